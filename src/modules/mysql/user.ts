/**
 * mysql_user: an account with a password and exact privileges. Passwords are compared as
 * mysql_native_password hashes computed here, so a password is never read back and never sent in
 * clear: the server receives only its hash.
 */
import { z } from 'zod';
import type { Change, ModuleDef, Plan } from '../contract.js';
import {
  account,
  flavor,
  flavorOf,
  hostName,
  nativePasswordHash,
  NOT_INSTALLED_NOTE,
  parseRows,
  password,
  probeOutput,
  reveal,
  selectProbe,
  sqlCommand,
  sqlIdent,
  sqlString,
  userName,
  type MysqlFlavor,
  type RawRead,
  type Stmt,
} from './client.js';
import { compareText } from '../../util/compare-text.js';

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
  /** true: the account may log in over TLS only (REQUIRE SSL); false: REQUIRE NONE. Omitted: left alone. */
  require_ssl: z.boolean().optional(),
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

/** An account's plugin, authentication string and privileges per level. */
export function userGrants(p: { user: string; host: string }): RawRead {
  return selectProbe(`mysql:user:${p.user}@${p.host}`, userProbeSql(p));
}

interface UserState {
  plugin: string;
  authentication: string;
  /** mysql.user.ssl_type: '' (REQUIRE NONE), ANY (REQUIRE SSL), X509, SPECIFIED. */
  sslType: string;
  /** level → privileges (GRANT OPTION included as a privilege). */
  privileges: Map<string, Set<string>>;
}

function parseUserState(stdout: string, f: MysqlFlavor): UserState | undefined {
  let state: UserState | undefined;
  const privileges = new Map<string, Set<string>>();
  for (const row of parseRows(stdout)) {
    if (row[0] === 'user') state = { plugin: row[1] ?? '', authentication: row[2] ?? '', sslType: row[3] ?? '', privileges };
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
    `SELECT 'user', plugin, authentication_string, ssl_type FROM mysql.user WHERE User = ${sqlString(p.user)} AND Host = ${sqlString(p.host)};`,
    `SELECT 'priv', '*.*', PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ${grantee};`,
    `SELECT 'priv', CONCAT(TABLE_SCHEMA, '.*'), PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ${grantee};`,
    `SELECT 'priv', CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ${grantee};`,
  ].join('\n');
}

function privilegeLines(m: Map<string, Set<string>>): string {
  return [...m.entries()]
    .filter(([, s]) => s.size > 0)
    .sort(([a], [b]) => compareText(a, b))
    .map(([l, s]) => `${l}: ${[...s].sort().join(', ')}\n`)
    .join('');
}

/** How an account's password is set: by its hash, so the clear password never reaches the binary log. */
export function identifiedClause(hash: string, f: MysqlFlavor): string {
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
  probes: (p) => [userGrants(p)],
  plan(p, ctx): Plan {
    const f = flavorOf(ctx.facts, p.flavor);
    const out = probeOutput(ctx, userGrants(p), `user ${p.user}@${p.host}`);
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
      const sql = `CREATE USER ${acct}${hash ? ` ${identifiedClause(hash, f)}` : ''}${p.require_ssl ? ' REQUIRE SSL' : ''}`;
      stmts.push({ sql, show: hidden(sql) });
      changes.push({ kind: 'sql', target, action: `${hash ? 'create (with password)' : 'create'}${p.require_ssl ? ', TLS required' : ''}`, sensitive: hash ? true : undefined });
    } else if (hash && p.update_password === 'always' && (have.plugin !== 'mysql_native_password' || have.authentication !== hash)) {
      const sql = `ALTER USER ${acct} ${identifiedClause(hash, f)}`;
      stmts.push({ sql, show: hidden(sql) });
      changes.push({ kind: 'sql', target, action: have.plugin === 'mysql_native_password' ? 'update password' : `update password (${have.plugin} → mysql_native_password)`, sensitive: true });
    }
    if (have && p.require_ssl !== undefined && (have.sslType !== '') !== p.require_ssl) {
      // REQUIRE SSL is the only demand this module makes: X509/SPECIFIED (set by hand) count as TLS required and are kept.
      stmts.push({ sql: `ALTER USER ${acct} REQUIRE ${p.require_ssl ? 'SSL' : 'NONE'}` });
      changes.push({ kind: 'sql', target, action: p.require_ssl ? 'require TLS (REQUIRE SSL)' : 'TLS no longer required (REQUIRE NONE)', before: `ssl_type ${have.sslType || '(none)'}\n`, after: `ssl_type ${p.require_ssl ? 'ANY' : '(none)'}\n` });
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
