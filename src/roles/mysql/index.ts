import { z } from 'zod';
import { type Task } from '../../modules/index.js';
import { quote } from '../../util/quote.js';
import { Secret } from '../../util/secrets.js';
import { GROUPS, inGroup, privateAddress } from '../shared.js';
import { defineRole, problemIf, withRules } from '../define.js';
import type { RoleContext, VarIssue } from '../types.js';
import { bool, doc, isHostname, mysqlName, pick, secret, shared, shown, stringList, text, wholeNumber } from '../vars.js';
import { apt, command, file, internalTls, mysqlAccounts, mysqlDb, mysqlQuery, mysqlReplication, mysqlTopology, mysqlUser, service, template } from '../../modules/tasks.js';
import { databaseServiceName, DB_CA_FILE, DB_CERT_FILE, DB_TLS_DIR } from '../../modules/mysql/tls.js';
import { pkiDirFor } from '../../pki/index.js';
import { APP_RESTART } from '../app/index.js';

/** Handler: the server takes a renewed certificate (or CA bundle) without a restart. */
const RELOAD_TLS = 'reload the database server\'s TLS certificate';

/** What differs between MariaDB (Debian) and MySQL 8 (Ubuntu). */
function flavorSettings(ctx: RoleContext<MysqlVars>) {
  if (ctx.facts.os.family === 'ubuntu') {
    return {
      flavor: 'mysql' as const,
      packages: ['mysql-server'],
      service: 'mysql',
      configFile: '/etc/mysql/mysql.conf.d/60-provision.cnf',
      validate: 'mysqld --defaults-file=%s --validate-config',
      reloadTls: 'ALTER INSTANCE RELOAD TLS',
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
    // MariaDB 10.4+: the certificate, key and CA files read again by the running server.
    reloadTls: 'FLUSH SSL',
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

/** The mark on the accounts this role makes (a row in provision.managed_accounts on the primary). */
export const ACCOUNTS_OWNER = 'role mysql';

/** A password's length rule: long enough; the replication one short enough for MySQL 8 to keep it whole. */
function passwordLength(name: string, v: unknown, max?: number): VarIssue[] {
  if (!(v instanceof Secret)) return []; // missing or in clear: the schema says so
  const n = v.reveal().length;
  return [
    ...problemIf(n < 12, name, 'at least 12 characters'),
    ...problemIf(max !== undefined && n > max, name, `at most ${max} characters (the replica stores no more)`),
  ];
}

const positive = (description: string, initial: number) => wholeNumber(1, undefined, 'a positive integer').default(initial).describe(description);

const vars = withRules(
  z.object({
    ...pick('mysql_port', 'private_address'),
    mysql_exporter_user: shared('mysql_exporter_user', 'The account the mysqld exporter uses (made on the primary, replicated), `localhost` only.'),
    mysql_server_id: doc(wholeNumber(0, 4294967295, 'an integer from 1 to 4294967295 (0 = derived from the address)'), { defaultText: '`0`: derived from the private address (third octet × 256 + fourth)' })
      .default(0)
      .describe('The server id; each server of a replication pair needs its own.'),
    mysql_bind_address: shared('mysql_bind_address', 'Address the server listens on; `""`: the private address.'),
    mysql_max_connections: positive('`max_connections`.', 151),
    mysql_innodb_buffer_pool_size: text(/^\d+[KMG]?$/, 'a size like 128M or 2G', 'size').default('128M').describe('`innodb_buffer_pool_size`.'),
    mysql_binlog_expire_days: positive('Days the binary log is kept.', 7),
    app_db_name: shared('app_db_name', "The application's database, made on the primary."),
    mysql_app_user: shared('mysql_app_user', "The application's user, one account per web server's private address."),
    mysql_app_password: shared('mysql_app_password', "The application user's password (at least 12 characters)."),
    mysql_app_privileges: stringList((p) => /^[A-Za-z ]+$/.test(p) && !/^all/i.test(p.trim()), 'a non-empty list of privilege names (not ALL)', 'list of privilege names', { nonEmpty: true })
      .default(['SELECT', 'INSERT', 'UPDATE', 'DELETE'])
      .describe('What the application gets on `app_db_name.*`, nothing more (no DDL: root makes the schema).'),
    mysql_replication_user: mysqlName().default('replicator').describe('The replication account, one per replica\'s private address.'),
    mysql_replication_password: secret('mysql_replication_password').describe("The replication account's password (12 to 32 characters)."),
    mysql_exporter_password: shared('mysql_exporter_password', "The exporter account's password (at least 12 characters); required on database hosts."),
    db_tls_name: doc(
      text((s) => s === '' || isHostname(s), (v) => `a fully qualified DNS name like db.example.internal (or "" for the default), got ${shown(v)}`, 'DNS name'),
      { defaultText: '`""`: `db.<inventory name>.internal`' },
    )
      .default('')
      .describe(
        'The name every database certificate of the site carries besides its host\'s own (a client behind the endpoint may check it). ' +
          'Set it once for all database hosts to keep the certificates when the inventory file is renamed: a new name issues every one again.',
      ),
    mysql_tls_renew_days: wholeNumber(1, 365, 'a whole number of days from 1 to 365')
      .default(30)
      .describe("The database server's certificate from the internal CA is issued again when it ends within this many days."),
    mysql_replication_verify_timeout: positive('Seconds the replica task waits for both replication threads, then for the replica to catch up before the tables are compared.', 60),
    mysql_replica_reinitialize: bool()
      .default(false)
      .describe("A replica's first setup on a server that holds data or GTIDs of its own (a former primary) is refused unless `true`; then every non-system database of that server is dropped and replaced by the copy of the primary. Set it in that host's vars for the run that should do it."),
  }),
  [
    {
      says: '`mysql_exporter_password` is required (a `!secret`) on the database hosts.',
      check: (v) => problemIf(v.mysql_exporter_password === undefined, 'mysql_exporter_password', `required, as a !secret (mysql_exporter_password: !secret mysql_exporter_password)`),
    },
    {
      says: 'The passwords have at least 12 characters; `mysql_replication_password` at most 32 (MySQL 8 keeps no more of a replication source password).',
      check: (v) => [
        ...passwordLength('mysql_app_password', v.mysql_app_password),
        ...passwordLength('mysql_exporter_password', v.mysql_exporter_password),
        ...passwordLength('mysql_replication_password', v.mysql_replication_password, 32),
      ],
    },
  ],
);

type MysqlVars = z.output<typeof vars>;

export const role = defineRole({
  name: 'mysql',
  description:
    'MariaDB (Debian) or MySQL 8 (Ubuntu) as a GTID primary/replica pair: binary log, distinct server ids, secure install; ' +
    'on the primary the app database and the app, replication and exporter users with exact privileges; on the replica ' +
    'read-only replication from the primary, verified (both threads running).',
  vars,
  hostRules: [
    {
      says: `A host is in \`${GROUPS.dbPrimary}\` or in \`${GROUPS.dbReplica}\`, not both.`,
      check: (_v, host) => problemIf(host.groups.includes(GROUPS.dbPrimary) && host.groups.includes(GROUPS.dbReplica), [], `host is in both ${GROUPS.dbPrimary} and ${GROUPS.dbReplica}`),
    },
  ],
  tasks(ctx: RoleContext<MysqlVars>): Task[] {
    const v = ctx.vars;
    const s = flavorSettings(ctx);
    const isPrimary = inGroup(ctx, GROUPS.dbPrimary);
    const isReplica = inGroup(ctx, GROUPS.dbReplica);
    const address = privateAddress(ctx.host);
    const primaries = ctx.hostsIn(GROUPS.dbPrimary);
    if (isReplica && primaries.length !== 1) throw new Error(`mysql: a replica needs exactly one host in group ${GROUPS.dbPrimary} (found ${primaries.length})`);
    const primaryAddress = primaries[0] ? privateAddress(primaries[0]) : '';
    const db = v.app_db_name;

    const tasks: Task[] = [
      // First of all: a primary recorded on this host by `provision db switchover` that is not the inventory's
      // stops the role before it changes anything (it would turn the servers back).
      ...(primaries.length === 1 && (isPrimary || isReplica)
        ? [
            mysqlTopology(`the recorded database primary is the inventory's (${primaries[0]!.name})`, {
              primary: primaries[0]!.name,
              replicas: ctx.hostsIn(GROUPS.dbReplica).map((h) => h.name),
            }),
          ]
        : []),
      apt(`install ${s.packages.join(', ')}`, { packages: s.packages }),
      // TLS before the config that names its files: the server would not start without them. The key's file is the
      // server's (mysql, 0600) in a folder only root and mysql enter; the CA bundle is for every client (0644).
      file(`database TLS folder ${DB_TLS_DIR}`, { path: DB_TLS_DIR, state: 'directory', mode: '0750', owner: 'root', group: 'mysql' }),
      internalTls(
        `database server certificate from the internal CA (${ctx.host.name}, ${address})`,
        {
          pki_dir: pkiDirFor(ctx.inventory),
          ca_label: ctx.inventory.name,
          cert_file: DB_CERT_FILE,
          cert_owner: 'mysql',
          cert_group: 'mysql',
          // Its own name and address (replication verifies the address it dials), and the name every database
          // certificate of the inventory carries (an app behind the endpoint checks that one).
          names: [ctx.host.name, address, v.db_tls_name || databaseServiceName(ctx.inventory.name)],
          renew_before_days: v.mysql_tls_renew_days,
        },
        { notify: RELOAD_TLS },
      ),
      // The one owner of the bundle on a database host (the app role leaves it to this task there). The app reads it
      // at start: on a host that is also a web server, a new bundle (a CA rotation) restarts the app as well.
      internalTls(
        'database CA bundle (replication and the app verify the servers with it)',
        { pki_dir: pkiDirFor(ctx.inventory), ca_label: ctx.inventory.name, ca_file: DB_CA_FILE },
        { notify: inGroup(ctx, GROUPS.webservers) ? [RELOAD_TLS, APP_RESTART] : RELOAD_TLS },
      ),
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
          server_id: serverIdFor(address, v.mysql_server_id),
          bind_address: v.mysql_bind_address || address,
          tls_cert: DB_CERT_FILE,
          tls_ca: DB_CA_FILE,
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
      const appPrivileges = { [`${db}.*`]: v.mysql_app_privileges };
      // Every account this role makes: recorded as the role's, so that one the inventory no longer calls for is dropped.
      const accounts: Array<{ user: string; host: string }> = [];
      tasks.push(mysqlDb(`database ${db}`, { name: db, flavor: s.flavor }));
      for (const h of ctx.hostsIn(GROUPS.webservers)) {
        accounts.push({ user: v.mysql_app_user, host: privateAddress(h) });
        tasks.push(
          mysqlUser(`app user ${v.mysql_app_user}@${privateAddress(h)} (${h.name})`, {
            user: v.mysql_app_user,
            host: privateAddress(h),
            password: v.mysql_app_password as Secret,
            privileges: appPrivileges,
            require_ssl: true,
            flavor: s.flavor,
          }),
        );
      }
      for (const h of ctx.hostsIn(GROUPS.dbReplica)) {
        accounts.push({ user: v.mysql_replication_user, host: privateAddress(h) });
        tasks.push(
          mysqlUser(`replication user ${v.mysql_replication_user}@${privateAddress(h)} (${h.name})`, {
            user: v.mysql_replication_user,
            host: privateAddress(h),
            password: v.mysql_replication_password as Secret,
            privileges: { '*.*': ['REPLICATION SLAVE'] },
            require_ssl: true,
            flavor: s.flavor,
          }),
        );
      }
      tasks.push(
        mysqlUser(`exporter user ${v.mysql_exporter_user}@localhost`, {
          user: v.mysql_exporter_user,
          host: 'localhost',
          password: v.mysql_exporter_password as Secret,
          privileges: { '*.*': s.exporterPrivileges },
          flavor: s.flavor,
        }),
      );
      accounts.push({ user: v.mysql_exporter_user, host: 'localhost' });
      tasks.push(mysqlAccounts('accounts this role made that the inventory no longer calls for dropped', { owner: ACCOUNTS_OWNER, accounts }));
    }

    if (isReplica) {
      tasks.push(
        mysqlReplication(`replicate from ${primaries[0]!.name} (${primaryAddress})`, {
          primary_host: primaryAddress,
          primary_port: v.mysql_port,
          user: v.mysql_replication_user,
          password: v.mysql_replication_password as Secret,
          verify_timeout: v.mysql_replication_verify_timeout,
          seed_from: primaries[0]!.name,
          reinitialize: v.mysql_replica_reinitialize,
          tls_ca: DB_CA_FILE,
          flavor: s.flavor,
        }),
      );
    }
    return tasks;
  },
  // A new certificate on a running server: FLUSH SSL (MySQL: ALTER INSTANCE RELOAD TLS), host-local. A first one is
  // taken by the restart above (config newer than the server), which happens before this handler.
  handlers: (ctx) => [mysqlQuery(RELOAD_TLS, { sql: flavorSettings(ctx as RoleContext<MysqlVars>).reloadTls, binlog: false })],
});
