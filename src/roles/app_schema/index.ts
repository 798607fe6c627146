import path from 'node:path';
import { z } from 'zod';
import { ROLES_DIR } from '../../util/paths.js';
import { appSchemaTask } from '../app/index.js';
import { defineRole } from '../define.js';
import { pick } from '../vars.js';

/** The app role's schema file: one schema, whichever role makes it. */
const SCHEMA_FILE = path.join(ROLES_DIR, 'app', 'files', 'schema.sql');

export const role = defineRole({
  name: 'app_schema',
  description:
    "The example application's tables (`visits`, `notes`) in `app_db_name` on the database primary (play on `db_primary` in " +
    'the site playbook, after the mysql role): the app role makes them only when the primary is also a web server, so a primary ' +
    'on a host of its own (inventory/prod-split.yml) gets them here. Made unless they all exist (as root over the local socket; ' +
    'the app user has no DDL); they replicate.',
  vars: z.object({ ...pick('app_db_name') }),
  tasks: (ctx) => [appSchemaTask(ctx.vars.app_db_name, SCHEMA_FILE)],
});
