import { readFileSync } from 'node:fs';
import type { Host } from '../../inventory/index.js';
import { type Task } from '../../modules/index.js';
import { Secret } from '../../util/secrets.js';
import { GROUPS, inGroup, num, privateAddress, SHARED_DEFAULTS, str } from '../shared.js';
import type { RoleContext, RoleDef } from '../types.js';
import { apt, copy, file, group, mysqlQuery, service, template, user } from '../../modules/tasks.js';

const RESTART = 'restart app';
const UNIT = 'app.service';
const NAME = /^[A-Za-z0-9_]{1,32}$/;
const TABLES = ['visits', 'notes'];

/** Where the app writes (the primary) and reads (its own database when it is a database host, else the primary). */
export function databaseHosts(ctx: RoleContext): { write: string; read: string } {
  const primaries = ctx.hostsIn(GROUPS.dbPrimary);
  const primary = primaries[0] ? privateAddress(primaries[0]) : '';
  const write = str(ctx.vars, 'app_db_write_host') || primary;
  const local = inGroup(ctx, GROUPS.dbPrimary) || inGroup(ctx, GROUPS.dbReplica) ? privateAddress(ctx.host) : primary;
  const read = str(ctx.vars, 'app_db_read_host') || local;
  if (!write || !read) throw new Error(`app: no database to use: set app_db_write_host/app_db_read_host or put a host in group ${GROUPS.dbPrimary}`);
  return { write, read };
}

export const role: RoleDef = {
  name: 'app',
  description:
    'The sample application: a plain Node.js HTTP server (Debian nodejs + node-mysql) under its own system user with a ' +
    'hardened systemd unit, on 127.0.0.1:app_port; writes to the MySQL primary, reads from the local database; creates its schema on the primary.',
  defaults: {
    app_port: SHARED_DEFAULTS.app_port,
    mysql_port: SHARED_DEFAULTS.mysql_port,
    private_address: SHARED_DEFAULTS.private_address,
    app_db_name: 'app',
    mysql_app_user: 'app',
    mysql_app_password: undefined,
    app_user: 'app',
    app_dir: '/opt/app',
    app_config_file: '/etc/app/config.json',
    /** Only Nginx in front of it reaches the app. */
    app_listen_address: '127.0.0.1',
    /** Empty: the db_primary host's private address. */
    app_db_write_host: '',
    /** Empty: the host's own private address when it is a database host, else the primary. */
    app_db_read_host: '',
    app_packages: ['nodejs', 'node-mysql'],
  },
  validate(vars: Record<string, unknown>, _host: Host): string[] {
    const problems: string[] = [];
    const pw = vars.mysql_app_password;
    if (!(pw instanceof Secret)) problems.push('mysql_app_password: required, as a !secret');
    for (const name of ['app_db_name', 'mysql_app_user', 'app_user']) {
      if (typeof vars[name] !== 'string' || !NAME.test(vars[name] as string)) problems.push(`${name}: letters, digits and _ only, 1 to 32 characters`);
    }
    for (const name of ['app_port', 'mysql_port']) {
      const v = vars[name];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) problems.push(`${name}: a port number`);
    }
    for (const name of ['app_dir', 'app_config_file']) {
      const v = vars[name];
      if (typeof v !== 'string' || !/^\/[A-Za-z0-9_./-]+$/.test(v) || v.includes('..')) problems.push(`${name}: an absolute path`);
    }
    if (typeof vars.app_config_file === 'string' && !/^\/[^/]+\/.+/.test(vars.app_config_file)) problems.push('app_config_file: must be inside a directory of its own (e.g. /etc/app/config.json)');
    for (const name of ['app_listen_address', 'app_db_write_host', 'app_db_read_host']) {
      if (typeof vars[name] !== 'string' || !/^[A-Za-z0-9.:-]*$/.test(vars[name] as string)) problems.push(`${name}: an address or host name`);
    }
    if (!vars.app_listen_address) problems.push('app_listen_address: required');
    const pkgs = vars.app_packages;
    if (!Array.isArray(pkgs) || pkgs.length === 0 || pkgs.some((p) => typeof p !== 'string')) problems.push('app_packages: a non-empty list of package names');
    return problems;
  },
  tasks(ctx: RoleContext): Task[] {
    const v = ctx.vars;
    const appUser = str(v, 'app_user');
    const appDir = str(v, 'app_dir');
    const configFile = str(v, 'app_config_file');
    const configDir = configFile.slice(0, configFile.lastIndexOf('/'));
    const db = str(v, 'app_db_name');
    const { write, read } = databaseHosts(ctx);
    num(v, 'app_port');
    return [
      apt('install Node.js and node-mysql (Debian packages)', { packages: v.app_packages as string[] }),
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
};
