import type { Host } from '../../inventory/index.js';
import { type Task } from '../../modules/index.js';
import { quote } from '../../util/quote.js';
import { Secret } from '../../util/secrets.js';
import { GROUPS, inGroup, list, num, privateAddress, SHARED_DEFAULTS, str } from '../shared.js';
import type { RoleContext, RoleDef } from '../types.js';
import { apt, command, mysqlAccounts, mysqlDb, mysqlQuery, mysqlReplication, mysqlUser, service, template } from '../../modules/tasks.js';

/** What differs between MariaDB (Debian) and MySQL 8 (Ubuntu). */
function flavorSettings(ctx: RoleContext) {
  if (ctx.facts.os.family === 'ubuntu') {
    return {
      flavor: 'mysql' as const,
      packages: ['mysql-server'],
      service: 'mysql',
      configFile: '/etc/mysql/mysql.conf.d/60-provision.cnf',
      validate: 'mysqld --defaults-file=%s --validate-config',
      exporterPrivileges: ['PROCESS', 'REPLICATION CLIENT', 'SELECT'],
    };
  }
  return {
    flavor: 'mariadb' as const,
    packages: ['mariadb-server'],
    service: 'mariadb',
    configFile: '/etc/mysql/mariadb.conf.d/60-provision.cnf',
    // Unknown or malformed settings make mariadbd refuse to start: checked before the live file is replaced.
    validate: 'mariadbd --defaults-file=%s --help --verbose >/dev/null',
    // MariaDB 10.5+ split SHOW SLAVE STATUS out of REPLICATION CLIENT (now BINLOG MONITOR) into SLAVE MONITOR.
    exporterPrivileges: ['PROCESS', 'REPLICATION CLIENT', 'SLAVE MONITOR', 'SELECT'],
  };
}

/** A server id from the address: the last two octets (distinct within a /16), unless set. */
export function serverIdFor(address: string, configured: number): number {
  if (configured > 0) return configured;
  const octets = address.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o))) return 1;
  return Math.max(1, octets[2]! * 256 + octets[3]!);
}

const NAME = /^[A-Za-z0-9_]{1,32}$/;

/** The mark on the accounts this role makes (a row in provision.managed_accounts on the primary). */
export const ACCOUNTS_OWNER = 'role mysql';

function secretOrString(v: unknown): v is Secret | string {
  return v instanceof Secret || typeof v === 'string';
}

function secretLength(v: Secret | string): number {
  return (v instanceof Secret ? v.reveal() : v).length;
}

export const role: RoleDef = {
  name: 'mysql',
  description:
    'MariaDB (Debian) or MySQL 8 (Ubuntu) as a GTID primary/replica pair: binary log, distinct server ids, secure install; ' +
    'on the primary the app database and the app, replication and exporter users with exact privileges; on the replica ' +
    'read-only replication from the primary, verified (both threads running).',
  defaults: {
    mysql_port: SHARED_DEFAULTS.mysql_port,
    private_address: SHARED_DEFAULTS.private_address,
    mysql_exporter_user: SHARED_DEFAULTS.mysql_exporter_user,
    /** 0: derived from the private address (third octet × 256 + fourth). */
    mysql_server_id: 0,
    /** Empty: the host's private address. */
    mysql_bind_address: '',
    mysql_max_connections: 151,
    mysql_innodb_buffer_pool_size: '128M',
    mysql_binlog_expire_days: 7,
    app_db_name: 'app',
    mysql_app_user: 'app',
    mysql_app_password: undefined,
    /** What the application needs on its own database, nothing more (no DDL: the schema is made by root). */
    mysql_app_privileges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
    mysql_replication_user: 'replicator',
    mysql_replication_password: undefined,
    mysql_exporter_password: undefined,
    /** Seconds the replica waits for both replication threads to run, then to catch up, before the task fails. */
    mysql_replication_verify_timeout: 60,
    /**
     * A replica's first setup on a server that holds data or GTIDs of its own (a former primary) is
     * refused unless this is true; then that data is replaced with a copy of the primary.
     */
    mysql_replica_reinitialize: false,
  },
  validate(vars: Record<string, unknown>, host: Host): string[] {
    const problems: string[] = [];
    for (const name of ['mysql_app_password', 'mysql_replication_password', 'mysql_exporter_password']) {
      const v = vars[name];
      if (!secretOrString(v)) problems.push(`${name}: required (a !secret)`);
      else if (secretLength(v) < 12) problems.push(`${name}: at least 12 characters`);
      else if (typeof v === 'string') problems.push(`${name}: must be a !secret, not a clear-text value in the inventory`);
    }
    // MySQL 8 keeps at most 32 characters of a replication source password.
    const rp = vars.mysql_replication_password;
    if (secretOrString(rp) && secretLength(rp) > 32) problems.push('mysql_replication_password: at most 32 characters (the replica stores no more)');
    for (const name of ['app_db_name', 'mysql_app_user', 'mysql_replication_user', 'mysql_exporter_user']) {
      if (typeof vars[name] !== 'string' || !NAME.test(vars[name] as string)) problems.push(`${name}: letters, digits and _ only, 1 to 32 characters`);
    }
    const id = vars.mysql_server_id;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > 4294967295) problems.push('mysql_server_id: an integer from 1 to 4294967295 (0 = derived from the address)');
    for (const name of ['mysql_port', 'mysql_max_connections', 'mysql_binlog_expire_days', 'mysql_replication_verify_timeout']) {
      const v = vars[name];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) problems.push(`${name}: a positive integer`);
    }
    if (typeof vars.mysql_innodb_buffer_pool_size !== 'string' || !/^\d+[KMG]?$/.test(vars.mysql_innodb_buffer_pool_size)) problems.push('mysql_innodb_buffer_pool_size: a size like 128M or 2G');
    const privs = vars.mysql_app_privileges;
    if (!Array.isArray(privs) || privs.length === 0 || privs.some((p) => typeof p !== 'string' || !/^[A-Za-z ]+$/.test(p) || /^all/i.test(p.trim()))) {
      problems.push('mysql_app_privileges: a non-empty list of privilege names (not ALL)');
    }
    if (typeof vars.mysql_replica_reinitialize !== 'boolean') problems.push('mysql_replica_reinitialize: true or false');
    if (typeof vars.mysql_bind_address !== 'string') problems.push('mysql_bind_address: a string (empty = the private address)');
    if (host.groups.includes(GROUPS.dbPrimary) && host.groups.includes(GROUPS.dbReplica)) problems.push(`host is in both ${GROUPS.dbPrimary} and ${GROUPS.dbReplica}`);
    return problems;
  },
  tasks(ctx: RoleContext): Task[] {
    const v = ctx.vars;
    const s = flavorSettings(ctx);
    const isPrimary = inGroup(ctx, GROUPS.dbPrimary);
    const isReplica = inGroup(ctx, GROUPS.dbReplica);
    const address = privateAddress(ctx.host);
    const primaries = ctx.hostsIn(GROUPS.dbPrimary);
    if (isReplica && primaries.length !== 1) throw new Error(`mysql: a replica needs exactly one host in group ${GROUPS.dbPrimary} (found ${primaries.length})`);
    const primaryAddress = primaries[0] ? privateAddress(primaries[0]) : '';
    const db = str(v, 'app_db_name');

    const tasks: Task[] = [
      apt(`install ${s.packages.join(', ')}`, { packages: s.packages }),
      template(`configure ${s.flavor === 'mariadb' ? 'MariaDB' : 'MySQL'} (${s.configFile})`, {
        src: ctx.file('templates/provision.cnf.njk'),
        dest: s.configFile,
        mode: '0644',
        validate: s.validate,
        vars: {
          ...v,
          flavor: s.flavor,
          is_replica: isReplica,
          primary_address: primaryAddress,
          server_id: serverIdFor(address, num(v, 'mysql_server_id')),
          bind_address: str(v, 'mysql_bind_address') || address,
        },
      }),
      // The new settings (server id, binary log, GTID, read-only) must be live before any SQL below: a replica
      // set up on the old ones replicates with the wrong id. So the restart happens here, not in an end-of-play
      // handler, guarded by the host's own state — config newer than the running server — which also catches a
      // run that died between writing the config and restarting.
      command(`restart ${s.service} when its config is newer than the running server`, {
        cmd: `systemctl restart ${quote(s.service)} && mysqladmin --wait=30 ping >/dev/null`,
        // Skipped while the running server is at least as new as its config; a dry run on a host
        // without the server (no pid file) predicts the restart, as the real run will do it.
        unless: `[ -e /run/mysqld/mysqld.pid ] && [ ! ${quote(s.configFile)} -nt /run/mysqld/mysqld.pid ]`,
      }),
      service(`${s.service} running and enabled`, { name: s.service, state: 'started', enabled: true }),

      // Secure installation, host-local (kept out of the binary log, so it never replicates nor adds GTIDs).
      ...['localhost', ctx.facts.hostname].map((h) => mysqlUser(`no anonymous user @${h}`, { user: '', host: h, state: 'absent', binlog: false, flavor: s.flavor })),
      ...['%', '127.0.0.1', '::1', ctx.facts.hostname].map((h) => mysqlUser(`root only through the local socket: no root@${h}`, { user: 'root', host: h, state: 'absent', binlog: false, flavor: s.flavor })),
      mysqlDb('no test database', { name: 'test', state: 'absent', binlog: false, flavor: s.flavor }),
      mysqlQuery('no grants on test databases', {
        sql: "DELETE FROM mysql.db WHERE Db = 'test' OR Db = 'test\\\\_%';\nFLUSH PRIVILEGES",
        onlyif: "SELECT 1 FROM mysql.db WHERE Db = 'test' OR Db = 'test\\\\_%' LIMIT 1",
        binlog: false,
      }),
    ];

    if (isPrimary) {
      // Created on the primary only: they replicate. Anything written on a replica first would give it GTIDs of its own.
      const appPrivileges = { [`${db}.*`]: list(v, 'mysql_app_privileges') };
      // Every account this role makes: recorded as the role's, so that one the inventory no longer calls for is dropped.
      const accounts: Array<{ user: string; host: string }> = [];
      tasks.push(mysqlDb(`database ${db}`, { name: db, flavor: s.flavor }));
      for (const h of ctx.hostsIn(GROUPS.webservers)) {
        accounts.push({ user: str(v, 'mysql_app_user'), host: privateAddress(h) });
        tasks.push(
          mysqlUser(`app user ${str(v, 'mysql_app_user')}@${privateAddress(h)} (${h.name})`, {
            user: str(v, 'mysql_app_user'),
            host: privateAddress(h),
            password: v.mysql_app_password as Secret,
            privileges: appPrivileges,
            flavor: s.flavor,
          }),
        );
      }
      for (const h of ctx.hostsIn(GROUPS.dbReplica)) {
        accounts.push({ user: str(v, 'mysql_replication_user'), host: privateAddress(h) });
        tasks.push(
          mysqlUser(`replication user ${str(v, 'mysql_replication_user')}@${privateAddress(h)} (${h.name})`, {
            user: str(v, 'mysql_replication_user'),
            host: privateAddress(h),
            password: v.mysql_replication_password as Secret,
            privileges: { '*.*': ['REPLICATION SLAVE'] },
            flavor: s.flavor,
          }),
        );
      }
      tasks.push(
        mysqlUser(`exporter user ${str(v, 'mysql_exporter_user')}@localhost`, {
          user: str(v, 'mysql_exporter_user'),
          host: 'localhost',
          password: v.mysql_exporter_password as Secret,
          privileges: { '*.*': s.exporterPrivileges },
          flavor: s.flavor,
        }),
      );
      accounts.push({ user: str(v, 'mysql_exporter_user'), host: 'localhost' });
      tasks.push(mysqlAccounts('accounts this role made that the inventory no longer calls for dropped', { owner: ACCOUNTS_OWNER, accounts }));
    }

    if (isReplica) {
      tasks.push(
        mysqlReplication(`replicate from ${primaries[0]!.name} (${primaryAddress})`, {
          primary_host: primaryAddress,
          primary_port: num(v, 'mysql_port'),
          user: str(v, 'mysql_replication_user'),
          password: v.mysql_replication_password as Secret,
          verify_timeout: num(v, 'mysql_replication_verify_timeout'),
          seed_from: primaries[0]!.name,
          reinitialize: v.mysql_replica_reinitialize === true,
          flavor: s.flavor,
        }),
      );
    }
    return tasks;
  },
};
