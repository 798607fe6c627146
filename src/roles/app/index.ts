import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { defineRole } from '../define.js';
import { GROUPS, inGroup, privateAddress } from '../shared.js';
import type { RoleContext } from '../types.js';
import { pick, shared, stringList, text } from '../vars.js';
import { apt, copy, file, group, mysqlQuery, service, template, user } from '../../modules/tasks.js';

const RESTART = 'restart app';
const UNIT = 'app.service';
const NAME = /^[A-Za-z0-9_]{1,32}$/;
const TABLES = ['visits', 'notes'];

/** Where the app writes (the primary) and reads (its own database when it is a database host, else the primary). */
export function databaseHosts(ctx: RoleContext<AppVars>): { write: string; read: string } {
  const primaries = ctx.hostsIn(GROUPS.dbPrimary);
  const primary = primaries[0] ? privateAddress(primaries[0]) : '';
  const write = ctx.vars.app_db_write_host || primary;
  const local = inGroup(ctx, GROUPS.dbPrimary) || inGroup(ctx, GROUPS.dbReplica) ? privateAddress(ctx.host) : primary;
  const read = ctx.vars.app_db_read_host || local;
  if (!write || !read) throw new Error(`app: no database to use: set app_db_write_host/app_db_read_host or put a host in group ${GROUPS.dbPrimary}`);
  return { write, read };
}

const SAFE_PATH = /^\/[A-Za-z0-9_./-]+$/;
const absolutePath = () => text((s) => SAFE_PATH.test(s) && !s.includes('..'), 'an absolute path', 'absolute path');
const address = () => text(/^[A-Za-z0-9.:-]*$/, 'an address or host name', 'address or host name');

const vars = z.object({
  app_port: shared('app_port', 'The port the app listens on.'),
  ...pick('mysql_port', 'private_address', 'app_db_name', 'mysql_app_user', 'mysql_app_password'),
  app_user: text(NAME, 'letters, digits and _ only, 1 to 32 characters', 'user name').default('app').describe('System user and group the app runs as.'),
  app_dir: absolutePath().default('/opt/app').describe('Where the code goes (owned by root).'),
  app_config_file: absolutePath()
    .refine((s) => /^\/[^/]+\/.+/.test(s), { error: 'must be inside a directory of its own (e.g. /etc/app/config.json)' })
    .default('/etc/app/config.json')
    .describe('The JSON config (in a directory of its own, readable by the app user only).'),
  app_listen_address: address().min(1, { error: 'required' }).default('127.0.0.1').describe('Listen address: only Nginx in front of it reaches the app.'),
  app_db_write_host: address().default('').describe("Where the app writes; `\"\"`: the `db_primary` host's private address."),
  app_db_read_host: address().default('').describe("Where the app reads; `\"\"`: the host's own private address when it is a database host, else the primary."),
  app_packages: stringList(() => true, 'a non-empty list of package names', 'list of package names', { nonEmpty: true })
    .default(['nodejs', 'node-mysql'])
    .describe('Debian packages the app needs (no npm).'),
});
type AppVars = z.output<typeof vars>;

export const role = defineRole({
  name: 'app',
  description:
    'The sample application on the web servers: a plain Node.js HTTP server (no framework, `src/roles/app/files/server.js`) ' +
    "using Debian's `nodejs` and `node-mysql` packages (no npm), run by systemd under its own system user with a hardened unit, " +
    'listening on `127.0.0.1:app_port` (Nginx in front of it is the only client). It writes to the MySQL primary, reads from the ' +
    'local database, and creates its schema on the primary.',
  vars,
  tasks(ctx) {
    const v = ctx.vars;
    const appUser = v.app_user;
    const appDir = v.app_dir;
    const configFile = v.app_config_file;
    const configDir = configFile.slice(0, configFile.lastIndexOf('/'));
    const db = v.app_db_name;
    const { write, read } = databaseHosts(ctx);
    return [
      apt('install Node.js and node-mysql (Debian packages)', { packages: v.app_packages }),
      group(`group ${appUser}`, { name: appUser, system: true }),
      user(`system user ${appUser}`, { name: appUser, group: appUser, system: true, home: appDir, create_home: false, shell: '/usr/sbin/nologin' }),
      file(`${appDir} (code, owned by root)`, { path: appDir, state: 'directory', owner: 'root', group: 'root', mode: '0755' }),
      copy('application code', { src: ctx.file('files/server.js'), dest: `${appDir}/server.js`, owner: 'root', group: 'root', mode: '0644', validate: 'node --check %s' }, { notify: RESTART }),
      file(`${configDir} (readable by ${appUser} only)`, { path: configDir, state: 'directory', owner: 'root', group: appUser, mode: '0750' }),
      template(
        `application config ${configFile}`,
        {
          src: ctx.file('templates/config.json.njk'),
          dest: configFile,
          owner: 'root',
          group: appUser,
          mode: '0640',
          sensitive: true,
          validate: `node -e "JSON.parse(require('fs').readFileSync(process.argv[1], 'utf8'))" %s`,
          vars: { ...v, write_host: write, read_host: read },
        },
        { notify: RESTART },
      ),
      // The schema is made on the primary only (it replicates): a replica must never be written to directly.
      mysqlQuery(
        `schema of database ${db} (${TABLES.join(', ')})`,
        {
          database: db,
          sql: readFileSync(ctx.file('files/schema.sql'), 'utf8'),
          unless: `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${TABLES.map((t) => `'${t}'`).join(', ')}) HAVING COUNT(*) = ${TABLES.length}`,
        },
        { when: inGroup(ctx, GROUPS.dbPrimary) },
      ),
      template(
        `systemd unit ${UNIT}`,
        {
          src: ctx.file('templates/app.service.njk'),
          dest: `/etc/systemd/system/${UNIT}`,
          mode: '0644',
          // systemd-analyze wants the unit under its own name.
          validate: `d=$(mktemp -d) && cp %s "$d/${UNIT}" && systemd-analyze verify "$d/${UNIT}"; r=$?; rm -rf "$d"; exit $r`,
          vars: v,
        },
        { notify: RESTART },
      ),
      service(`${UNIT} running and enabled`, { name: UNIT, state: 'started', enabled: true, daemon_reload: true }),
    ];
  },
  handlers: () => [service(RESTART, { name: UNIT, state: 'restarted', daemon_reload: true })],
});
