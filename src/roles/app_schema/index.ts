import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { defineRole } from '../define.js';
import { pick } from '../vars.js';
import { mysqlQuery } from '../../modules/tasks.js';

const TABLES = ['visits', 'notes'];

export const role = defineRole({
  name: 'app_schema',
  description:
    "The example application's tables (`visits`, `notes`, from `files/schema.sql`) in `app_db_name`, made on the database " +
    'primary (play on `db_primary` in the site playbook, after the mysql role, before the web servers): the one owner of the ' +
    'schema in both topologies, whether the primary is also a web server (3 hosts) or a host of its own (inventory/prod-split.yml); ' +
    'the app role makes none. Made unless they all exist (as root over the local socket; the app user has no DDL); they replicate.',
  vars: z.object({ ...pick('app_db_name') }),
  tasks: (ctx) => [
    mysqlQuery(`schema of database ${ctx.vars.app_db_name} (${TABLES.join(', ')})`, {
      database: ctx.vars.app_db_name,
      sql: readFileSync(ctx.file('files/schema.sql'), 'utf8'),
      unless: `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${TABLES.map((t) => `'${t}'`).join(', ')}) HAVING COUNT(*) = ${TABLES.length}`,
    }),
  ],
});
