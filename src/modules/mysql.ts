/**
 * MySQL / MariaDB modules: databases, users with exact privileges, replication, guarded SQL.
 *
 * Every statement goes through the host's own client (`mysql --batch`, root over the unix socket)
 * with the SQL on stdin: nothing of it — least of all a password — reaches argv, `ps` or a shell
 * history, and no port has to be opened or tunnelled for the control machine. State is read by
 * probes (heredocs in the engine's batched probe script), so a converged host costs no extra
 * round trip. Passwords are compared as mysql_native_password hashes computed here, so a password
 * is never read back and never sent in clear: the server receives only its hash.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Facts, ProbeResult } from '../facts/index.js';
import { ModuleError } from '../util/errors.js';
import { quote } from '../util/quote.js';
import { Secret } from '../util/secrets.js';
import { probe, secret, sharedProbe, type Change, type Command, type ModuleContext, type ModuleDef, type Plan, type Probe } from './contract.js';

/** Compatibility until the mysql rewrite: these modules read raw results (ctx.results), so their probes parse nothing. */
type RawRead = Probe<ProbeResult | undefined>;
const asIs = (r: ProbeResult | undefined) => r;

// ---------------------------------------------------------------------------------------------
// The client: flavour, quoting, probes, commands, output parsing.

export type MysqlFlavor = 'mariadb' | 'mysql';

/** Debian ships MariaDB (`default-mysql-server`); Ubuntu ships MySQL 8 (`mysql-server`). */
export function flavorOf(facts: Facts, override?: MysqlFlavor): MysqlFlavor {
  return override ?? (facts.os.family === 'ubuntu' ? 'mysql' : 'mariadb');
}

const CLIENT = 'mysql --batch --skip-column-names';
const CLIENT_WITH_HEADERS = 'mysql --batch';
const HEREDOC = 'PROVISION_SQL';

/** A SQL string literal (default sql_mode: backslash escapes are active). */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, '\\n').replace(/\0/g, '\\0')}'`;
}

export function sqlIdent(s: string): string {
  return '`' + s.replace(/`/g, '``') + '`';
}

export function account(user: string, host: string): string {
  return `${sqlString(user)}@${sqlString(host)}`;
}

/** MySQL's mysql_native_password hash: "*" + upper hex of SHA1(SHA1(password)). */
export function nativePasswordHash(password: string): string {
  const inner = createHash('sha1').update(password, 'utf8').digest();
  return '*' + createHash('sha1').update(inner).digest('hex').toUpperCase();
}

/** A probe script: fails with the client's message when the server cannot be asked. */
function sqlScript(sql: string, headers = false): string {
  if (sql.split('\n').some((l) => l.trim() === HEREDOC)) throw new Error('SQL contains the heredoc delimiter');
  return `${headers ? CLIENT_WITH_HEADERS : CLIENT} <<'${HEREDOC}' || exit $?\n${sql}\n${HEREDOC}`;
}

const CLIENT_CHECK = `command -v mysql >/dev/null 2>&1 || { echo 'the mysql client is not installed'; exit 127; }`;

function sqlProbe(key: string, sql: string, headers = false): RawRead {
  return probe(key, `${CLIENT_CHECK}\n${sqlScript(sql, headers)}`, asIs);
}

const SELECTS_GROUP = 'mysql-selects';
const selectMarker = (sql: string) => `@@q ${createHash('sha256').update(sql).digest('hex').slice(0, 16)}`;

/**
 * Reads of the server's own tables (users, privileges, databases) that cannot fail on their own:
 * every one of a batch goes through ONE client run (each costs tens of ms on the host), each
 * answer after a marker row of its own; the client's exit code closes the file ("@@rc N"). A probe
 * takes the rows after its marker, or, when the client failed, its message and exit code, as if it
 * had asked alone.
 */
function selectProbe(key: string, sql: string): RawRead {
  return sharedProbe(key, { group: SELECTS_GROUP, item: sql, read: readSelects, pick: pickSelect }, asIs);
}

/** One query's rows out of the shared client run, or the client's failure as if the query ran alone. */
export function pickSelect(out: { stdout: string }, sql: string): { stdout: string; code: number } {
  const lines = out.stdout.split('\n');
  const rc = lines.find((l) => l.startsWith('@@rc '));
  const code = rc === undefined ? 1 : Number(rc.slice(5));
  if (code !== 0) return { stdout: lines.filter((l) => !l.startsWith('@@')).join('\n'), code: code || 1 };
  const marker = selectMarker(sql);
  const rows: string[] = [];
  let on = false;
  for (const l of lines) {
    if (l === marker) on = true;
    else if (l.startsWith('@@q ') || l.startsWith('@@rc ')) on = false;
    else if (on) rows.push(l + '\n');
  }
  return { stdout: rows.join(''), code: 0 };
}

function readSelects(sqls: string[]): string {
  const body = sqls.map((q) => `SELECT ${sqlString(selectMarker(q))};\n${q.trim().replace(/;?$/, ';')}`).join('\n');
  return `exec 2>&1; ${CLIENT_CHECK.replace('exit 127', "echo '@@rc 127'; exit 0")}\n${CLIENT} <<'${HEREDOC}'\n${body}\n${HEREDOC}\necho "@@rc $?"`;
}

/** A statement and how it is shown (secrets left out). */
interface Stmt {
  sql: string;
  show?: string;
}

/** Run statements through the local client, SQL on stdin. binlog: false keeps them out of the binary log. */
function sqlCommand(stmts: Stmt[], binlog = true): Command {
  const all = binlog ? stmts : [{ sql: 'SET SESSION sql_log_bin = 0' }, ...stmts];
  return {
    kind: 'shell',
    cmd: CLIENT,
    stdin: all.map((s) => s.sql + ';').join('\n') + '\n',
    describe: `mysql (SQL on stdin): ${stmts.map((s) => s.show ?? s.sql).join('; ')}`,
  };
}

/** Undo the batch-mode escaping of one field. */
function unescapeField(s: string): string | null {
  if (s === 'NULL') return null;
  return s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === '0' ? '\0' : c));
}

export function parseRows(stdout: string): Array<Array<string | null>> {
  return stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t').map(unescapeField));
}

/** Batch output with a header line → one record per row. */
export function parseRecords(stdout: string): Array<Record<string, string | null>> {
  const rows = stdout.split('\n').filter((l) => l.length > 0);
  if (rows.length === 0) return [];
  const header = rows[0]!.split('\t');
  return rows.slice(1).map((r) => {
    const values = r.split('\t').map(unescapeField);
    return Object.fromEntries(header.map((h, i) => [h, values[i] ?? null]));
  });
}

/**
 * The result of a probe, or undefined when the server cannot be asked but a dry run predicts it
 * (an earlier task would install it). Anything else unreadable is an error, never "absent".
 */
function probeOutput(ctx: ModuleContext, key: string, what: string): string | undefined {
  const r: ProbeResult | undefined = ctx.results.get(key);
  if (r && r.code === 0) return r.stdout;
  if (ctx.check && ctx.predicted.anyChange) return undefined;
  throw new ModuleError(`cannot read ${what} from the server: ${(r?.stdout ?? 'no probe result').trim().split('\n').slice(-3).join(' ')}`);
}

const NOT_INSTALLED_NOTE = 'the server is not installed or running yet; an earlier task in this run would provide it';

// Names: checked, so they can never break out of the SQL they are put in.
const dbName = z.string().regex(/^[A-Za-z0-9_$-]{1,64}$/, 'a database name (letters, digits, _ $ -)');
const userName = z.string().regex(/^[A-Za-z0-9_.-]{0,80}$/, 'a user name (letters, digits, _ . -; empty = anonymous)');
const hostName = z.string().regex(/^[A-Za-z0-9_.%:/-]{1,255}$/, 'a host (address, name, %, localhost, netmask)');
const password = secret(z.union([z.string().min(1), z.instanceof(Secret)]));
const flavor = z.enum(['mariadb', 'mysql']).optional();

function reveal(p: string | Secret): string {
  return p instanceof Secret ? p.reveal() : p;
}

// ---------------------------------------------------------------------------------------------
// mysql_db

const dbParams = z.strictObject({
  name: dbName,
  state: z.enum(['present', 'absent']).default('present'),
  encoding: z.string().regex(/^[a-z0-9]+$/).default('utf8mb4'),
  collation: z
    .string()
    .regex(/^[a-z0-9_]+$/)
    .optional(),
  /** false: the statement stays out of the binary log (host-local housekeeping, never replicated). */
  binlog: z.boolean().default(true),
  flavor,
});
export type MysqlDbParams = z.input<typeof dbParams>;

export const mysqlDbModule: ModuleDef<z.output<typeof dbParams>> = {
  name: 'mysql_db',
  schema: dbParams,
  probes: (p) => [
    selectProbe(`mysql:db:${p.name}`, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${sqlString(p.name)}`),
  ],
  plan(p, ctx): Plan {
    const out = probeOutput(ctx, `mysql:db:${p.name}`, `database ${p.name}`);
    const row = out === undefined ? undefined : parseRows(out)[0];
    const target = `database ${p.name}`;
    if (p.state === 'absent') {
      if (!row) return { changes: [], commands: [] };
      return { changes: [{ kind: 'sql', target, action: 'drop' }], commands: [sqlCommand([{ sql: `DROP DATABASE IF EXISTS ${sqlIdent(p.name)}` }], p.binlog)] };
    }
    const spec = `CHARACTER SET ${p.encoding}${p.collation ? ` COLLATE ${p.collation}` : ''}`;
    if (!row) {
      return {
        changes: [{ kind: 'sql', target, action: `create (${p.encoding})` }],
        commands: [sqlCommand([{ sql: `CREATE DATABASE IF NOT EXISTS ${sqlIdent(p.name)} ${spec}` }], p.binlog)],
        note: out === undefined ? NOT_INSTALLED_NOTE : undefined,
      };
    }
    const [charset, collation] = row;
    if (charset === p.encoding && (!p.collation || collation === p.collation)) return { changes: [], commands: [] };
    return {
      changes: [{ kind: 'sql', target, action: 'alter character set', before: `${charset} ${collation}\n`, after: `${p.encoding}${p.collation ? ` ${p.collation}` : ''}\n` }],
      commands: [sqlCommand([{ sql: `ALTER DATABASE ${sqlIdent(p.name)} ${spec}` }], p.binlog)],
    };
  },
};

// ---------------------------------------------------------------------------------------------
// mysql_user

const level = z
  .string()
  .regex(/^(\*\.\*|[A-Za-z0-9_$-]{1,64}\.(\*|[A-Za-z0-9_$-]{1,64}))$/, 'a privilege level: *.*, db.* or db.table');
const privilegeName = z
  .string()
  .regex(/^[A-Za-z ]+$/, 'a privilege name')
  .transform((s) => s.trim().toUpperCase().replace(/\s+/g, ' '))
  .refine((s) => s !== 'ALL' && s !== 'ALL PRIVILEGES', 'list the privileges explicitly (ALL cannot be compared exactly)')
  .refine((s) => s !== 'USAGE', 'USAGE is no privilege: give an empty list');

const userParams = z.strictObject({
  user: userName,
  host: hostName,
  state: z.enum(['present', 'absent']).default('present'),
  /** Stored as a mysql_native_password hash; compared without revealing it. */
  password: password.optional(),
  /** always: set it whenever the hash differs; on_create: only for a new account. */
  update_password: z.enum(['always', 'on_create']).default('always'),
  /** Exact privileges per level ("*.*", "db.*", "db.table"); anything else granted is revoked. Omitted: left alone. */
  privileges: z.record(level, z.array(privilegeName)).optional(),
  binlog: z.boolean().default(true),
  flavor,
});
export type MysqlUserParams = z.input<typeof userParams>;
type UserParams = z.output<typeof userParams>;

/** MariaDB 10.5+ renamed some privileges; the old names are aliases the server reports under the new ones. */
const MARIADB_ALIASES: Record<string, string> = {
  'REPLICATION CLIENT': 'BINLOG MONITOR',
  'REPLICATION REPLICA': 'REPLICATION SLAVE',
  'REPLICA MONITOR': 'SLAVE MONITOR',
};

function canonicalPrivilege(name: string, f: MysqlFlavor): string {
  return f === 'mariadb' ? (MARIADB_ALIASES[name] ?? name) : name;
}

/** "db.*" → `db`.* ; "*.*" stays. */
function levelSql(l: string): string {
  if (l === '*.*') return l;
  const [db, table] = l.split('.') as [string, string];
  return `${sqlIdent(db)}.${table === '*' ? '*' : sqlIdent(table)}`;
}

function userKey(p: { user: string; host: string }): string {
  return `mysql:user:${p.user}@${p.host}`;
}

interface UserState {
  plugin: string;
  authentication: string;
  /** level → privileges (GRANT OPTION included as a privilege). */
  privileges: Map<string, Set<string>>;
}

function parseUserState(stdout: string, f: MysqlFlavor): UserState | undefined {
  let state: UserState | undefined;
  const privileges = new Map<string, Set<string>>();
  for (const row of parseRows(stdout)) {
    if (row[0] === 'user') state = { plugin: row[1] ?? '', authentication: row[2] ?? '', privileges };
    else if (row[0] === 'priv' && row[1] && row[2]) {
      const priv = canonicalPrivilege(row[2], f);
      if (priv === 'USAGE') continue;
      const set = privileges.get(row[1]) ?? new Set<string>();
      set.add(priv);
      if (row[3] === 'YES') set.add('GRANT OPTION');
      privileges.set(row[1], set);
    }
  }
  return state;
}

function userProbeSql(p: { user: string; host: string }): string {
  const grantee = sqlString(`'${p.user}'@'${p.host}'`);
  return [
    `SELECT 'user', plugin, authentication_string FROM mysql.user WHERE User = ${sqlString(p.user)} AND Host = ${sqlString(p.host)};`,
    `SELECT 'priv', '*.*', PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ${grantee};`,
    `SELECT 'priv', CONCAT(TABLE_SCHEMA, '.*'), PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ${grantee};`,
    `SELECT 'priv', CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ${grantee};`,
  ].join('\n');
}

function privilegeLines(m: Map<string, Set<string>>): string {
  return [...m.entries()]
    .filter(([, s]) => s.size > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([l, s]) => `${l}: ${[...s].sort().join(', ')}\n`)
    .join('');
}

function identifiedClause(hash: string, f: MysqlFlavor): string {
  return f === 'mariadb' ? `IDENTIFIED BY PASSWORD ${sqlString(hash)}` : `IDENTIFIED WITH mysql_native_password AS ${sqlString(hash)}`;
}

function planUserPrivileges(p: UserParams, have: Map<string, Set<string>>, f: MysqlFlavor, acct: string): { changes: Change[]; stmts: Stmt[] } {
  const want = new Map<string, Set<string>>();
  for (const [l, privs] of Object.entries(p.privileges ?? {})) want.set(l, new Set(privs.map((x) => canonicalPrivilege(x, f))));
  const changes: Change[] = [];
  const stmts: Stmt[] = [];
  const target = `user ${p.user}@${p.host}`;
  for (const l of [...new Set([...have.keys(), ...want.keys()])].sort()) {
    const cur = have.get(l) ?? new Set<string>();
    const wanted = want.get(l) ?? new Set<string>();
    const extra = [...cur].filter((x) => !wanted.has(x)).sort();
    const missing = [...wanted].filter((x) => !cur.has(x)).sort();
    const extraPlain = extra.filter((x) => x !== 'GRANT OPTION');
    const missingPlain = missing.filter((x) => x !== 'GRANT OPTION');
    if (extraPlain.length) stmts.push({ sql: `REVOKE ${extraPlain.join(', ')} ON ${levelSql(l)} FROM ${acct}` });
    if (extra.includes('GRANT OPTION')) stmts.push({ sql: `REVOKE GRANT OPTION ON ${levelSql(l)} FROM ${acct}` });
    if (missingPlain.length || missing.includes('GRANT OPTION')) {
      // GRANT needs at least one privilege; USAGE adds only the grant option.
      stmts.push({ sql: `GRANT ${missingPlain.length ? missingPlain.join(', ') : 'USAGE'} ON ${levelSql(l)} TO ${acct}${missing.includes('GRANT OPTION') ? ' WITH GRANT OPTION' : ''}` });
    }
    if (extra.length) changes.push({ kind: 'sql', target, action: `revoke ${extra.join(', ')} on ${l}` });
    if (missing.length) changes.push({ kind: 'sql', target, action: `grant ${missing.join(', ')} on ${l}` });
  }
  if (changes.length) {
    // One diff of the whole privilege set, on the first privilege change.
    const wantLines = privilegeLines(want);
    changes[0] = { ...changes[0]!, before: privilegeLines(have), after: wantLines };
  }
  return { changes, stmts };
}

export const mysqlUserModule: ModuleDef<UserParams> = {
  name: 'mysql_user',
  schema: userParams,
  probes: (p) => [selectProbe(userKey(p), userProbeSql(p))],
  plan(p, ctx): Plan {
    const f = flavorOf(ctx.facts, p.flavor);
    const out = probeOutput(ctx, userKey(p), `user ${p.user}@${p.host}`);
    const have = out === undefined ? undefined : parseUserState(out, f);
    const acct = account(p.user, p.host);
    const target = `user ${p.user}@${p.host}`;
    const note = out === undefined ? NOT_INSTALLED_NOTE : undefined;

    if (p.state === 'absent') {
      if (!have) return { changes: [], commands: [] };
      return { changes: [{ kind: 'sql', target, action: 'drop' }], commands: [sqlCommand([{ sql: `DROP USER IF EXISTS ${acct}` }], p.binlog)] };
    }

    const changes: Change[] = [];
    const stmts: Stmt[] = [];
    const hash = p.password === undefined ? undefined : nativePasswordHash(reveal(p.password));
    const hidden = (s: string) => (hash ? s.split(sqlString(hash)).join("'<hash>'") : s);
    if (!have) {
      const sql = `CREATE USER ${acct}${hash ? ` ${identifiedClause(hash, f)}` : ''}`;
      stmts.push({ sql, show: hidden(sql) });
      changes.push({ kind: 'sql', target, action: hash ? 'create (with password)' : 'create', sensitive: hash ? true : undefined });
    } else if (hash && p.update_password === 'always' && (have.plugin !== 'mysql_native_password' || have.authentication !== hash)) {
      const sql = `ALTER USER ${acct} ${identifiedClause(hash, f)}`;
      stmts.push({ sql, show: hidden(sql) });
      changes.push({ kind: 'sql', target, action: have.plugin === 'mysql_native_password' ? 'update password' : `update password (${have.plugin} → mysql_native_password)`, sensitive: true });
    }
    if (p.privileges) {
      const priv = planUserPrivileges(p, have?.privileges ?? new Map(), f, acct);
      changes.push(...priv.changes);
      stmts.push(...priv.stmts);
    }
    if (changes.length === 0) return { changes: [], commands: [] };
    return { changes, commands: [sqlCommand(stmts, p.binlog)], note };
  },
};

// ---------------------------------------------------------------------------------------------
// mysql_query: SQL run when a guard query says it is needed (schema creation, housekeeping).

const queryParams = z.strictObject({
  /** Statements (separated by ";") run when needed. */
  sql: z.string().min(1),
  /** A query: when it returns at least one row, nothing is run. */
  unless: z.string().min(1).optional(),
  /** A query: the SQL runs only when it returns at least one row. Without a guard the SQL runs every time (reported changed). */
  onlyif: z.string().min(1).optional(),
  database: dbName.optional(),
  binlog: z.boolean().default(true),
});
export type MysqlQueryParams = z.input<typeof queryParams>;

function guardKey(kind: 'unless' | 'onlyif', query: string, database?: string): string {
  return `mysql:query:${kind}:${database ?? ''}:${query}`;
}

function guardSql(query: string, database?: string): string {
  return `${database ? `USE ${sqlIdent(database)};\n` : ''}${query.trim().replace(/;\s*$/, '')};`;
}

export const mysqlQueryModule: ModuleDef<z.output<typeof queryParams>> = {
  name: 'mysql_query',
  schema: queryParams,
  probes: (p) => [
    ...(p.unless ? [sqlProbe(guardKey('unless', p.unless, p.database), guardSql(p.unless, p.database))] : []),
    ...(p.onlyif ? [sqlProbe(guardKey('onlyif', p.onlyif, p.database), guardSql(p.onlyif, p.database))] : []),
  ],
  plan(p, ctx): Plan {
    let note: string | undefined;
    if (p.unless) {
      const out = probeOutput(ctx, guardKey('unless', p.unless, p.database), 'the unless query');
      if (out === undefined) note = NOT_INSTALLED_NOTE;
      else if (parseRows(out).length > 0) return { changes: [], commands: [] };
    }
    if (p.onlyif) {
      const out = probeOutput(ctx, guardKey('onlyif', p.onlyif, p.database), 'the onlyif query');
      // A guard that cannot be read yet (no server before the install) is taken as false for onlyif
      // (a clean-up on a fresh server has nothing to clean) and as not matching for unless (above).
      if (out === undefined) return { changes: [], commands: [], note: `${NOT_INSTALLED_NOTE}; its onlyif query is taken as empty` };
      if (parseRows(out).length === 0) return { changes: [], commands: [] };
    }
    const first = p.sql.trim().split('\n')[0]!;
    const show = first.length > 80 ? first.slice(0, 77) + '...' : first;
    const stmts: Stmt[] = [...(p.database ? [{ sql: `USE ${sqlIdent(p.database)}` }] : []), { sql: p.sql.trim().replace(/;\s*$/, ''), show }];
    return {
      changes: [{ kind: 'sql', target: p.database ? `database ${p.database}` : 'server', action: `run: ${show}`, after: p.sql.trim() + '\n' }],
      commands: [sqlCommand(stmts, p.binlog)],
      note,
    };
  },
};

// ---------------------------------------------------------------------------------------------
// mysql_replication: this server replicates from a primary, by GTID, both threads running.

const replicationParams = z.strictObject({
  primary_host: hostName,
  primary_port: z.number().int().min(1).max(65535).default(3306),
  user: userName.refine((u) => u.length > 0, 'a user name'),
  password,
  connect_retry: z.number().int().min(1).default(10),
  /** How long verify waits for both threads to run (seconds). */
  verify_timeout: z.number().positive().default(60),
  /** First setup only: the GTID position to start from (empty: the primary's whole binary log). */
  initial_gtid_pos: z
    .string()
    .regex(/^[0-9A-Za-z:,\s-]*$/, 'a GTID position')
    .default(''),
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
}

const STATUS_COLUMNS: Record<MysqlFlavor, Record<keyof Omit<ReplicaStatus, 'configured'>, string>> = {
  mariadb: {
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
    gtid: 'Using_Gtid',
    gtidPos: 'Gtid_IO_Pos',
  },
  mysql: {
    host: 'Source_Host',
    port: 'Source_Port',
    user: 'Source_User',
    io: 'Replica_IO_Running',
    sql: 'Replica_SQL_Running',
    ioState: 'Replica_IO_State',
    ioErrno: 'Last_IO_Errno',
    ioError: 'Last_IO_Error',
    sqlErrno: 'Last_SQL_Errno',
    sqlError: 'Last_SQL_Error',
    lag: 'Seconds_Behind_Source',
    gtid: 'Auto_Position',
    gtidPos: 'Retrieved_Gtid_Set',
  },
};

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

function changeSourceStmt(p: ReplicationParams, f: MysqlFlavor, credentialsOnly = false): Stmt {
  const pw = reveal(p.password);
  if (f === 'mariadb') {
    const fields = credentialsOnly
      ? [`MASTER_USER = ${sqlString(p.user)}`, `MASTER_PASSWORD = ${sqlString(pw)}`]
      : [
          `MASTER_HOST = ${sqlString(p.primary_host)}`,
          `MASTER_PORT = ${p.primary_port}`,
          `MASTER_USER = ${sqlString(p.user)}`,
          `MASTER_PASSWORD = ${sqlString(pw)}`,
          `MASTER_CONNECT_RETRY = ${p.connect_retry}`,
          'MASTER_USE_GTID = slave_pos',
        ];
    const sql = `CHANGE MASTER TO ${fields.join(', ')}`;
    return { sql, show: sql.replace(sqlString(pw), "'********'") };
  }
  const fields = credentialsOnly
    ? [`SOURCE_USER = ${sqlString(p.user)}`, `SOURCE_PASSWORD = ${sqlString(pw)}`]
    : [
        `SOURCE_HOST = ${sqlString(p.primary_host)}`,
        `SOURCE_PORT = ${p.primary_port}`,
        `SOURCE_USER = ${sqlString(p.user)}`,
        `SOURCE_PASSWORD = ${sqlString(pw)}`,
        `SOURCE_CONNECT_RETRY = ${p.connect_retry}`,
        'SOURCE_AUTO_POSITION = 1',
        'GET_SOURCE_PUBLIC_KEY = 1',
      ];
  const sql = `CHANGE REPLICATION SOURCE TO ${fields.join(', ')}`;
  return { sql, show: sql.replace(sqlString(pw), "'********'") };
}

function replicationKey(p: ReplicationParams): string {
  return `mysql:replication:${p.primary_host}:${p.primary_port}`;
}

/** Poll SHOW SLAVE/REPLICA STATUS until both threads run (bounded); a SQL error fails at once. */
async function waitForReplication(ctx: ModuleContext, p: ReplicationParams, f: MysqlFlavor): Promise<ReplicaStatus> {
  const deadline = Date.now() + p.verify_timeout * 1000;
  let last: ReplicaStatus | undefined;
  for (;;) {
    const r = await ctx.run(CLIENT_WITH_HEADERS, { stdin: statusSql(f) + ';\n' });
    if (r.code !== 0) throw new ModuleError(`cannot read the replica status: ${r.stdout.trim()}`);
    last = parseReplicaStatus(r.stdout, f);
    if (last.io === 'Yes' && last.sql === 'Yes') return last;
    if (last.sqlErrno !== 0) throw brokenError(last, f);
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

export const mysqlReplicationModule: ModuleDef<ReplicationParams> = {
  name: 'mysql_replication',
  schema: replicationParams,
  probes(p, { facts }) {
    const f = flavorOf(facts, p.flavor);
    const vars =
      f === 'mariadb'
        ? "SELECT 'log_bin', @@log_bin UNION ALL SELECT 'server_id', @@server_id UNION ALL SELECT 'gtid_slave_pos', @@gtid_slave_pos UNION ALL SELECT 'gtid_binlog_pos', @@gtid_binlog_pos;"
        : "SELECT 'log_bin', @@log_bin UNION ALL SELECT 'server_id', @@server_id UNION ALL SELECT 'gtid_mode', @@gtid_mode UNION ALL SELECT 'gtid_executed', @@gtid_executed;";
    return [probe(replicationKey(p), `${CLIENT_CHECK}\necho '@@status'\n${sqlScript(statusSql(f) + ';', true)}\necho '@@vars'\n${sqlScript(vars)}`, asIs)];
  },
  plan(p, ctx): Plan {
    const f = flavorOf(ctx.facts, p.flavor);
    const out = probeOutput(ctx, replicationKey(p), 'the replica status');
    const [statusText, varsText] = out === undefined ? ['', ''] : (out.split('@@vars\n') as [string, string]);
    const status = parseReplicaStatus(statusText.replace(/^@@status\n/, ''), f);
    const vars = Object.fromEntries(parseRows(varsText ?? '').map((r) => [r[0] ?? '', r[1] ?? '']));
    const target = `replication from ${p.primary_host}:${p.primary_port}`;
    const start: Stmt = { sql: f === 'mariadb' ? 'START SLAVE' : 'START REPLICA' };
    const stop: Stmt = { sql: f === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA' };
    if (out !== undefined && f === 'mysql' && vars.gtid_mode !== 'ON') {
      throw new ModuleError(`gtid_mode is ${vars.gtid_mode || 'unknown'} on this server: GTID replication needs gtid_mode=ON and enforce_gtid_consistency=ON`);
    }
    let plan: Plan;
    const sameSource = status.configured && status.host === p.primary_host && status.port === p.primary_port && status.user === p.user && status.gtid;

    if (!status.configured) {
      // First setup: the replica's own GTIDs (local writes before it followed anyone) would clash with the
      // primary's in strict mode, so its binary log and GTID state are cleared — only here, never later.
      const stmts: Stmt[] = [stop, { sql: f === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL' }];
      if (vars.log_bin !== '0' && vars.log_bin !== 'OFF') {
        stmts.push(
          f === 'mariadb'
            ? { sql: 'RESET MASTER' }
            : // super_read_only refuses RESET MASTER; lifted for that statement only.
              { sql: 'SET @provision_sro = @@GLOBAL.super_read_only; SET GLOBAL super_read_only = OFF; RESET MASTER; SET GLOBAL super_read_only = @provision_sro' },
        );
      }
      if (f === 'mariadb') stmts.push({ sql: `SET GLOBAL gtid_slave_pos = ${sqlString(p.initial_gtid_pos)}` });
      else if (p.initial_gtid_pos) stmts.push({ sql: `SET GLOBAL gtid_purged = ${sqlString(p.initial_gtid_pos)}` });
      stmts.push(changeSourceStmt(p, f), start);
      plan = {
        changes: [{ kind: 'sql', target, action: `set up (GTID${f === 'mariadb' ? ', slave_pos' : ' auto-position'}; the replica's own GTID state is reset first)`, after: `${p.user}@${p.primary_host}:${p.primary_port}\n` }],
        commands: [sqlCommand(stmts, false)],
        note: out === undefined ? NOT_INSTALLED_NOTE : undefined,
      };
    } else if (!sameSource) {
      // Another source (or no GTID): repointed, positions kept (GTID), nothing reset.
      plan = {
        changes: [
          {
            kind: 'sql',
            target,
            action: 'change source',
            before: `${status.user}@${status.host}:${status.port}${status.gtid ? '' : ' (no GTID)'}\n`,
            after: `${p.user}@${p.primary_host}:${p.primary_port}\n`,
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
      const s = await waitForReplication(vctx, p, f);
      plan.note = runningNote(s, p);
    };
    return plan;
  },
};
