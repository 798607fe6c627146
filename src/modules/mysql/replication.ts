/**
 * mysql_replication: this server replicates from a primary, by GTID, both threads running.
 *
 * A working replica is handled with care (started again, credentials re-set, repointed, never
 * reset). The first setup looks at the server before it changes anything: one that holds data or
 * GTIDs of its own is refused unless `reinitialize` says to replace them; otherwise the server is
 * seeded from a consistent copy of the primary (seed.ts) and, once caught up, its tables are
 * compared with the primary's (compare.ts).
 */
import { z } from 'zod';
import { ModuleError } from '../../util/errors.js';
import type { ModuleContext, ModuleDef, Plan } from '../contract.js';
import {
  CLIENT,
  CLIENT_CHECK,
  CLIENT_WITH_HEADERS,
  flavor,
  flavorOf,
  hostName,
  NOT_INSTALLED_NOTE,
  parseRecords,
  parseRows,
  password,
  probeOutput,
  rawProbe,
  reveal,
  sqlCommand,
  sqlScript,
  sqlString,
  userName,
  type MysqlFlavor,
  type RawRead,
  type Stmt,
} from './client.js';
import { compareWithPrimary } from './compare.js';
import {
  DATABASES_SQL,
  describeBytes,
  describeContents,
  dumpCommand,
  holdsData,
  parseContents,
  prepareStatements,
  primaryRunner,
  refusal,
  SEED_MARKER,
  seedFromPeer,
  type ServerContents,
} from './seed.js';
import { quote } from '../../util/quote.js';
import type { Secret } from '../../util/secrets.js';
import { DB_CA_FILE, sourceTlsFields } from './tls.js';

const replicationParams = z.strictObject({
  primary_host: hostName,
  primary_port: z.number().int().min(1).max(65535).default(3306),
  user: userName.refine((u) => u.length > 0, 'a user name'),
  password,
  connect_retry: z.number().int().min(1).default(10),
  /** How long verify waits for both threads to run, then for the replica to catch up (seconds). */
  verify_timeout: z.number().positive().default(60),
  /** The primary as an inventory host: a first setup seeds this server from a consistent dump of it, streamed over SSH. */
  seed_from: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'an inventory host name'),
  /**
   * First setup on a server that holds data or GTIDs of its own (a former primary, say): replace
   * them with the copy of the primary. Without it such a server is refused and left as it is.
   */
  reinitialize: z.boolean().default(false),
  /**
   * The CA bundle on this host to verify the primary with: replication over TLS (MASTER_SSL = 1,
   * MASTER_SSL_CA, MASTER_SSL_VERIFY_SERVER_CERT = 1). Omitted: the source's TLS settings are left as they are.
   */
  tls_ca: z.string().startsWith('/').optional(),
  flavor,
});
export type MysqlReplicationParams = z.input<typeof replicationParams>;
type ReplicationParams = z.output<typeof replicationParams>;

/** SHOW SLAVE/REPLICA STATUS, named the same for both servers. */
export interface ReplicaStatus {
  configured: boolean;
  host: string;
  port: number;
  user: string;
  io: string;
  sql: string;
  ioState: string;
  ioErrno: number;
  ioError: string;
  sqlErrno: number;
  sqlError: string;
  lag: string | null;
  gtid: boolean;
  gtidPos: string;
  /** Master_SSL_Allowed (Yes, No, Ignored), Master_SSL_CA_File, Master_SSL_Verify_Server_Cert (Yes, No). */
  sslAllowed: string;
  sslCa: string;
  sslVerify: string;
}

/**
 * MySQL 8 renamed replication's words (MASTER → SOURCE, Slave → Replica); MariaDB and MySQL 5.7
 * keep the old ones. Every name is written once, in the old spelling, and the new one derived.
 */
function mysql8Name(name: string): string {
  return name.replace(/MASTER/g, 'SOURCE').replace(/Master/g, 'Source').replace(/Slave/g, 'Replica');
}

/** SHOW SLAVE/REPLICA STATUS columns, by their MariaDB name; where MySQL 8 did not just rename, its own. */
const STATUS_COLUMN_TABLE: Record<keyof Omit<ReplicaStatus, 'configured'>, string | { mariadb: string; mysql: string }> = {
  host: 'Master_Host',
  port: 'Master_Port',
  user: 'Master_User',
  io: 'Slave_IO_Running',
  sql: 'Slave_SQL_Running',
  ioState: 'Slave_IO_State',
  ioErrno: 'Last_IO_Errno',
  ioError: 'Last_IO_Error',
  sqlErrno: 'Last_SQL_Errno',
  sqlError: 'Last_SQL_Error',
  lag: 'Seconds_Behind_Master',
  gtid: { mariadb: 'Using_Gtid', mysql: 'Auto_Position' },
  gtidPos: { mariadb: 'Gtid_IO_Pos', mysql: 'Retrieved_Gtid_Set' },
  sslAllowed: 'Master_SSL_Allowed',
  sslCa: 'Master_SSL_CA_File',
  sslVerify: 'Master_SSL_Verify_Server_Cert',
};

const columnsFor = (f: MysqlFlavor) =>
  Object.fromEntries(
    Object.entries(STATUS_COLUMN_TABLE).map(([k, v]) => [k, typeof v === 'string' ? (f === 'mariadb' ? v : mysql8Name(v)) : v[f]]),
  ) as Record<keyof typeof STATUS_COLUMN_TABLE, string>;

const STATUS_COLUMNS: Record<MysqlFlavor, Record<keyof typeof STATUS_COLUMN_TABLE, string>> = { mariadb: columnsFor('mariadb'), mysql: columnsFor('mysql') };

export function parseReplicaStatus(stdout: string, f: MysqlFlavor): ReplicaStatus {
  const rec = parseRecords(stdout)[0];
  const c = STATUS_COLUMNS[f];
  const get = (k: keyof typeof c) => rec?.[c[k]] ?? '';
  const host = get('host') ?? '';
  const gtid = get('gtid') ?? '';
  return {
    configured: rec !== undefined && host !== '',
    host,
    port: Number(get('port') || 0),
    user: get('user') ?? '',
    io: get('io') ?? '',
    sql: get('sql') ?? '',
    ioState: get('ioState') ?? '',
    ioErrno: Number(get('ioErrno') || 0),
    ioError: get('ioError') ?? '',
    sqlErrno: Number(get('sqlErrno') || 0),
    sqlError: get('sqlError') ?? '',
    lag: rec?.[c.lag] ?? null,
    gtid: f === 'mariadb' ? gtid === 'Slave_Pos' : gtid === '1',
    gtidPos: get('gtidPos') ?? '',
    sslAllowed: get('sslAllowed') ?? '',
    sslCa: get('sslCa') ?? '',
    sslVerify: get('sslVerify') ?? '',
  };
}

function statusSql(f: MysqlFlavor): string {
  return f === 'mariadb' ? 'SHOW SLAVE STATUS' : 'SHOW REPLICA STATUS';
}

/** Access denied / unknown user: the IO thread's credentials are wrong, CHANGE MASTER fixes them. */
const AUTH_ERRNOS = new Set([1045, 1044, 1698, 2061]);

function describeStatus(s: ReplicaStatus): string {
  return `IO thread ${s.io || 'off'}, SQL thread ${s.sql || 'off'}${s.ioState ? ` (${s.ioState})` : ''}`;
}

function brokenError(s: ReplicaStatus, f: MysqlFlavor): ModuleError {
  return new ModuleError(
    `replica is broken: the SQL thread stopped with error ${s.sqlErrno}: ${s.sqlError}. Not repaired automatically: ` +
      `fix the data (or skip the transaction) by hand, then ${f === 'mariadb' ? 'START SLAVE' : 'START REPLICA'}`,
  );
}

/** CHANGE MASTER TO's fields (MariaDB's names; MySQL 8's derived by mysql8Name), in statement order. */
const CHANGE_FIELDS = ['MASTER_HOST', 'MASTER_PORT', 'MASTER_USER', 'MASTER_PASSWORD', 'MASTER_CONNECT_RETRY'] as const;
const CREDENTIAL_FIELDS: ReadonlyArray<(typeof CHANGE_FIELDS)[number]> = ['MASTER_USER', 'MASTER_PASSWORD'];
/** Position by GTID: each flavour its own setting (not a rename); MySQL 8 also fetches the RSA key for caching_sha2_password. */
const GTID_FIELDS: Record<MysqlFlavor, string[]> = {
  mariadb: ['MASTER_USE_GTID = slave_pos'],
  mysql: ['SOURCE_AUTO_POSITION = 1', 'GET_SOURCE_PUBLIC_KEY = 1'],
};

function changeSourceStmt(p: ReplicationParams, f: MysqlFlavor, credentialsOnly = false): Stmt {
  const pw = reveal(p.password);
  const values: Record<(typeof CHANGE_FIELDS)[number], string> = {
    MASTER_HOST: sqlString(p.primary_host),
    MASTER_PORT: String(p.primary_port),
    MASTER_USER: sqlString(p.user),
    MASTER_PASSWORD: sqlString(pw),
    MASTER_CONNECT_RETRY: String(p.connect_retry),
  };
  const name = (field: string) => (f === 'mariadb' ? field : mysql8Name(field));
  const fields = [
    ...(credentialsOnly ? CREDENTIAL_FIELDS : CHANGE_FIELDS).map((field) => `${name(field)} = ${values[field]}`),
    ...(credentialsOnly ? [] : GTID_FIELDS[f]),
    ...(credentialsOnly || !p.tls_ca ? [] : sourceTlsFields({ ca: p.tls_ca }, sqlString).map(name)),
  ];
  const sql = `${f === 'mariadb' ? 'CHANGE MASTER TO' : 'CHANGE REPLICATION SOURCE TO'} ${fields.join(', ')}`;
  return { sql, show: sql.replace(sqlString(pw), "'********'") };
}

/**
 * CHANGE MASTER TO (CHANGE REPLICATION SOURCE TO) exactly as this module writes it, for `provision db`
 * to point a server at a new primary such that the next converge finds the same source (no change).
 * Over verified TLS with the database CA bundle (DB_CA_FILE), as the mysql role sets every replica up,
 * unless `tls: null`.
 */
export function changeSourceSql(source: { host: string; port: number; user: string; password: string | Secret; tls?: { ca: string } | null }, f: MysqlFlavor): Stmt {
  const tls = source.tls === undefined ? { ca: DB_CA_FILE } : source.tls;
  const p = replicationParams.parse({ primary_host: source.host, primary_port: source.port, user: source.user, password: source.password, seed_from: 'x', flavor: f, ...(tls ? { tls_ca: tls.ca } : {}) });
  return changeSourceStmt(p, f);
}

/** The source's TLS as SHOW SLAVE STATUS has it, against the wanted CA; undefined when it is as wanted (or not asked for). */
function tlsDifference(s: ReplicaStatus, p: ReplicationParams): string | undefined {
  if (!p.tls_ca) return undefined;
  if (s.sslAllowed === 'Yes' && s.sslCa === p.tls_ca && s.sslVerify === 'Yes') return undefined;
  return s.sslAllowed === 'Yes' ? `TLS with CA ${s.sslCa || '(none)'}, server certificate ${s.sslVerify === 'Yes' ? 'verified' : 'not verified'}` : 'no TLS';
}

function describeTls(p: ReplicationParams): string {
  return p.tls_ca ? ` over TLS (server verified with ${p.tls_ca})` : '';
}

/** The replica's status, server variables, databases and seed marker, in one read. */
export function replicaState(p: Pick<ReplicationParams, 'primary_host' | 'primary_port'>, f: MysqlFlavor): RawRead {
  return rawProbe(
    `mysql:replication:${p.primary_host}:${p.primary_port}`,
    [
      CLIENT_CHECK,
      "echo '@@status'",
      sqlScript(statusSql(f) + ';', true),
      "echo '@@vars'",
      sqlScript(varsSql(f)),
      "echo '@@databases'",
      sqlScript(DATABASES_SQL),
      "echo '@@seed'",
      `if [ -e ${quote(SEED_MARKER)} ]; then echo incomplete; fi`,
    ].join('\n'),
  );
}

/** Poll SHOW SLAVE/REPLICA STATUS until both threads run (bounded); a SQL error, or an IO thread that gave up, fails at once. */
async function waitForReplication(ctx: ModuleContext, p: ReplicationParams, f: MysqlFlavor, deadline: number): Promise<ReplicaStatus> {
  let last: ReplicaStatus | undefined;
  for (;;) {
    const r = await ctx.run(CLIENT_WITH_HEADERS, { stdin: statusSql(f) + ';\n' });
    if (r.code !== 0) throw new ModuleError(`cannot read the replica status: ${r.stdout.trim()}`);
    last = parseReplicaStatus(r.stdout, f);
    if (last.io === 'Yes' && last.sql === 'Yes') return last;
    if (last.sqlErrno !== 0) throw brokenError(last, f);
    // "No" (not "Connecting") with an error: the IO thread stopped for good (e.g. 1236, the primary no
    // longer has the binary logs it asks for); waiting longer changes nothing.
    if (last.io === 'No' && last.ioErrno !== 0) break;
    if (Date.now() >= deadline) break;
    await new Promise((res) => setTimeout(res, 1000));
  }
  throw new ModuleError(
    `replication from ${p.primary_host}:${p.primary_port} did not start within ${p.verify_timeout} s: ${describeStatus(last)}` +
      (last.ioErrno ? `; last IO error ${last.ioErrno}: ${last.ioError}` : ''),
  );
}

function runningNote(s: ReplicaStatus, p: ReplicationParams): string {
  return `replicating from ${p.primary_host}:${p.primary_port}: IO and SQL threads running, Seconds_Behind_Master=${s.lag ?? 'NULL'}`;
}

const SECTIONS = ['status', 'vars', 'databases', 'seed'] as const;

/** The probe's output, cut at its "@@name" lines. */
function splitSections(out: string): Record<(typeof SECTIONS)[number], string> {
  const parts: Record<string, string[]> = {};
  let current = '';
  for (const line of out.split('\n')) {
    const m = /^@@(\w+)$/.exec(line);
    if (m && (SECTIONS as readonly string[]).includes(m[1]!)) current = m[1]!;
    else if (current) (parts[current] ??= []).push(line);
  }
  return Object.fromEntries(SECTIONS.map((s) => [s, (parts[s] ?? []).join('\n')])) as Record<(typeof SECTIONS)[number], string>;
}

function varsSql(f: MysqlFlavor): string {
  const names = f === 'mariadb' ? ['log_bin', 'server_id', 'gtid_slave_pos', 'gtid_binlog_pos', 'gtid_current_pos'] : ['log_bin', 'server_id', 'gtid_mode', 'gtid_executed', 'super_read_only'];
  return names.map((n) => `SELECT '${n}', @@GLOBAL.${n}`).join(' UNION ALL ') + ';';
}

/**
 * First setup: seed from the primary, unless the server holds something of its own and may not lose
 * it. Three commands: reset (marker set first), the copy, then the source and START (marker cleared).
 */
function seedPlan(p: ReplicationParams, f: MysqlFlavor, ctx: ModuleContext, found: ServerContents | undefined, vars: Record<string, string>): Plan {
  const target = `replication from ${p.primary_host}:${p.primary_port}`;
  if (p.seed_from === ctx.host.name) throw new ModuleError(`seed_from names this host itself (${p.seed_from}): a replica is seeded from its primary`);
  const replaces = found !== undefined && (holdsData(found) || found.seedIncomplete);
  if (found && holdsData(found) && !found.seedIncomplete && !p.reinitialize) throw refusal(found, p.seed_from);
  // Every database of its own goes when it is replaced; on an empty server, nothing is dropped.
  const drop = replaces ? found.databases.map((d) => d.name) : [];
  const logBin = vars.log_bin !== '0' && vars.log_bin !== 'OFF';
  const start: Stmt[] = [changeSourceStmt(p, f), { sql: f === 'mariadb' ? 'START SLAVE' : 'START REPLICA' }];
  if (f === 'mysql' && vars.super_read_only !== '0' && vars.super_read_only !== 'OFF') start.push({ sql: 'SET GLOBAL super_read_only = ON' });
  const why = !replaces
    ? 'an empty server'
    : found.seedIncomplete
      ? `an earlier seed did not finish; replacing what it left: ${describeContents(found)}`
      : `reinitialize: replacing ${describeContents(found)}`;
  const dump = dumpCommand(f);
  let seeded = '';
  const plan: Plan = {
    changes: [
      {
        kind: 'sql',
        target,
        action: `seed from ${p.seed_from} (${why}), then replicate by GTID${f === 'mariadb' ? ' (slave_pos)' : ' (auto-position)'}`,
        before: replaces ? `${describeContents(found)}\n` : undefined,
        after: `copy of ${p.seed_from}; replicating as ${p.user}@${p.primary_host}:${p.primary_port}${describeTls(p)}\n`,
      },
    ],
    commands: [
      sqlCommand(prepareStatements(f, { logBin, drop }), false, { before: `mkdir -p ${quote(SEED_MARKER.replace(/\/[^/]*$/, ''))} && : > ${quote(SEED_MARKER)}` }),
      {
        kind: 'call',
        describe: `${dump} on ${p.seed_from} | ${CLIENT} here, streamed through the control machine over both SSH connections`,
        run: async (conn) => {
          const r = await seedFromPeer(ctx, conn, p.seed_from, f);
          seeded = `seeded from ${p.seed_from}: ${describeBytes(r.bytes)} in ${(r.ms / 1000).toFixed(1)} s`;
        },
      },
      sqlCommand(start, false, { after: `rm -f ${quote(SEED_MARKER)}` }),
    ],
    note: found === undefined ? NOT_INSTALLED_NOTE : undefined,
  };
  plan.verify = async (vctx) => {
    const deadline = Date.now() + p.verify_timeout * 1000;
    const s = await waitForReplication(vctx, p, f, deadline);
    const primary = await primaryRunner(ctx, p.seed_from);
    const replica = async (sql: string) => {
      const r = await vctx.run(`${CLIENT} 2>&1`, { stdin: sql });
      if (r.code !== 0) throw new ModuleError(`a query on this replica failed (exit ${r.code}): ${r.stdout.trim().split('\n').slice(-3).join(' ')}`);
      return r.stdout;
    };
    const compared = await compareWithPrimary(primary, replica, { flavor: f, primaryName: p.seed_from, deadline });
    plan.note = [seeded, runningNote(s, p), compared].filter(Boolean).join('; ');
  };
  return plan;
}

export const mysqlReplicationModule: ModuleDef<ReplicationParams> = {
  name: 'mysql_replication',
  schema: replicationParams,
  probes: (p, { facts }) => [replicaState(p, flavorOf(facts, p.flavor))],
  plan(p, ctx): Plan {
    const f = flavorOf(ctx.facts, p.flavor);
    const out = probeOutput(ctx, replicaState(p, f), 'the replica status');
    const sections = splitSections(out ?? '');
    const status = parseReplicaStatus(sections.status, f);
    const vars = Object.fromEntries(parseRows(sections.vars).map((r) => [r[0] ?? '', r[1] ?? '']));
    const target = `replication from ${p.primary_host}:${p.primary_port}`;
    const start: Stmt = { sql: f === 'mariadb' ? 'START SLAVE' : 'START REPLICA' };
    const stop: Stmt = { sql: f === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA' };
    if (out !== undefined && f === 'mysql' && vars.gtid_mode !== 'ON') {
      throw new ModuleError(`gtid_mode is ${vars.gtid_mode || 'unknown'} on this server: GTID replication needs gtid_mode=ON and enforce_gtid_consistency=ON`);
    }
    if (!status.configured) {
      const found = out === undefined ? undefined : parseContents(vars, sections.databases, sections.seed, f);
      return seedPlan(p, f, ctx, found, vars);
    }
    let plan: Plan;
    const sameSource = status.host === p.primary_host && status.port === p.primary_port && status.user === p.user && status.gtid;
    const tlsDiffers = tlsDifference(status, p);
    if (!sameSource || tlsDiffers) {
      // Another source, no GTID or not the TLS wanted (a plaintext replica moving to TLS): repointed,
      // positions kept (GTID), nothing reset.
      plan = {
        changes: [
          {
            kind: 'sql',
            target,
            action: sameSource ? 'replicate over TLS' : 'change source',
            before: `${status.user}@${status.host}:${status.port}${status.gtid ? '' : ' (no GTID)'}${tlsDiffers ? `, ${tlsDiffers}` : ''}\n`,
            after: `${p.user}@${p.primary_host}:${p.primary_port}${describeTls(p)}\n`,
          },
        ],
        commands: [sqlCommand([stop, changeSourceStmt(p, f), start], false)],
      };
    } else if (status.io === 'Yes' && status.sql === 'Yes') {
      return { changes: [], commands: [], note: runningNote(status, p) };
    } else if (status.sqlErrno !== 0) {
      throw brokenError(status, f);
    } else if (AUTH_ERRNOS.has(status.ioErrno)) {
      plan = {
        changes: [{ kind: 'sql', target, action: `update credentials (IO thread: error ${status.ioErrno}: ${status.ioError})` }],
        commands: [sqlCommand([stop, changeSourceStmt(p, f, true), start], false)],
      };
    } else {
      // Configured toward the right source but stopped (STOP SLAVE, a restart with skip-slave-start,
      // a network error): starting it again is safe, positions are kept.
      plan = {
        changes: [{ kind: 'sql', target, action: `start (was: ${describeStatus(status)})` }],
        commands: [sqlCommand([start], false)],
      };
    }
    plan.verify = async (vctx) => {
      const s = await waitForReplication(vctx, p, f, Date.now() + p.verify_timeout * 1000);
      plan.note = runningNote(s, p);
    };
    return plan;
  },
};
