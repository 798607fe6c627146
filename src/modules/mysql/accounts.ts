/**
 * mysql_accounts: the accounts an owner (a role) made, recorded as its own; recorded accounts the
 * owner no longer lists are dropped. Accounts recorded under another owner or under none (made by
 * hand, by the application, by another tool) are never touched.
 *
 * How an account is marked as ours: a row in a bookkeeping table, `provision.managed_accounts`
 * (owner, user, host), written on the primary with the accounts themselves. MariaDB has no comment
 * or attribute on an account (MySQL 8's ATTRIBUTE would serve one flavour only), and a state file
 * on the host would stay behind on a switchover: the table is replicated like the accounts, so
 * every server of the pair — and a replica promoted to primary — knows the same owners, and a
 * seed copies it along with everything else.
 */
import { z } from 'zod';
import type { Change, ModuleDef, Plan } from '../types.js';
import { account, CLIENT, CLIENT_CHECK, HEREDOC, hostName, NOT_INSTALLED_NOTE, parseRows, probeOutput, sqlCommand, sqlScript, sqlString, userName, type Stmt } from './client.js';

export const BOOKKEEPING_SCHEMA = 'provision';
export const BOOKKEEPING_TABLE = `${BOOKKEEPING_SCHEMA}.managed_accounts`;

/** Accounts of the server itself: never dropped, whatever a bookkeeping row says. */
const PROTECTED_USERS = new Set(['root', 'mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema', 'debian-sys-maint']);

const accountsParams = z.strictObject({
  /** Who made the accounts (e.g. "role mysql"): the mark a bookkeeping row carries. */
  owner: z.string().regex(/^[A-Za-z0-9_ .:-]{1,64}$/, 'an owner name (letters, digits, space, _ . : -)'),
  /** Every account the owner calls for now: recorded as its own. Its recorded accounts not listed here are dropped. */
  accounts: z.array(z.strictObject({ user: userName.refine((u) => u.length > 0, 'a user name'), host: hostName })),
  /** false: keep the statements out of the binary log (they then stay on this server). */
  binlog: z.boolean().default(true),
});
export type MysqlAccountsParams = z.input<typeof accountsParams>;
type AccountsParams = z.output<typeof accountsParams>;

const CREATE_TABLE = [
  `CREATE DATABASE IF NOT EXISTS ${BOOKKEEPING_SCHEMA} CHARACTER SET utf8mb4`,
  `CREATE TABLE IF NOT EXISTS ${BOOKKEEPING_TABLE} (owner VARCHAR(64) NOT NULL, user VARCHAR(128) NOT NULL, host VARCHAR(255) NOT NULL, ` +
    'recorded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (owner, user, host)) ENGINE=InnoDB',
];

function accountsKey(p: AccountsParams): string {
  return `mysql:accounts:${p.owner}`;
}

/** "@@table 0|1", then (when the table exists) one row per recorded account: user, host, exists (0/1). */
function probeScript(owner: string): string {
  const table = `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${sqlString(BOOKKEEPING_SCHEMA)} AND TABLE_NAME = 'managed_accounts';`;
  const rows =
    `SELECT a.user, a.host, (SELECT COUNT(*) FROM mysql.user u WHERE u.User = a.user AND u.Host = a.host) ` +
    `FROM ${BOOKKEEPING_TABLE} a WHERE a.owner = ${sqlString(owner)} ORDER BY a.user, a.host;`;
  // The status of `n=$(…)` is the client's: a server that cannot be asked fails the probe, never reads as "no table".
  return [CLIENT_CHECK, `n=$(${CLIENT} <<'${HEREDOC}'\n${table}\n${HEREDOC}\n) || exit $?`, 'echo "@@table $n"', `[ "$n" = 1 ] || exit 0`, sqlScript(rows)].join('\n');
}

interface Recorded {
  user: string;
  host: string;
  exists: boolean;
}

function parseRecorded(out: string): { table: boolean; rows: Recorded[] } {
  const lines = out.split('\n');
  const table = lines.some((l) => l.trim() === '@@table 1');
  const rows = parseRows(lines.filter((l) => !l.startsWith('@@')).join('\n')).map((r) => ({ user: r[0] ?? '', host: r[1] ?? '', exists: r[2] === '1' }));
  return { table, rows };
}

const keyOf = (a: { user: string; host: string }) => `${a.user}@${a.host}`;

export const mysqlAccountsModule: ModuleDef<AccountsParams> = {
  name: 'mysql_accounts',
  schema: accountsParams,
  probes: (p) => [{ key: accountsKey(p), script: probeScript(p.owner) }],
  plan(p, ctx): Plan {
    const out = probeOutput(ctx, accountsKey(p), `the accounts recorded for ${p.owner}`);
    const { table, rows } = out === undefined ? { table: false, rows: [] } : parseRecorded(out);
    const wanted = new Map(p.accounts.map((a) => [keyOf(a), a]));
    const recorded = new Set(rows.map(keyOf));
    const changes: Change[] = [];
    const stmts: Stmt[] = table ? [] : CREATE_TABLE.map((sql) => ({ sql }));
    const notes: string[] = [];

    for (const r of rows) {
      if (wanted.has(keyOf(r))) continue;
      if (PROTECTED_USERS.has(r.user)) {
        notes.push(`${keyOf(r)} is recorded for ${p.owner} but is an account of the server itself: left alone`);
        continue;
      }
      // Dropped first, forgotten after: a run that dies in between drops it again next time.
      if (r.exists) stmts.push({ sql: `DROP USER IF EXISTS ${account(r.user, r.host)}` });
      stmts.push({ sql: `DELETE FROM ${BOOKKEEPING_TABLE} WHERE owner = ${sqlString(p.owner)} AND user = ${sqlString(r.user)} AND host = ${sqlString(r.host)}` });
      changes.push({
        kind: 'sql',
        target: `user ${keyOf(r)}`,
        action: r.exists ? `drop (made by ${p.owner}, no longer in the inventory)` : `forget (made by ${p.owner}, already gone)`,
      });
    }
    const toRecord = [...wanted.values()].filter((a) => !recorded.has(keyOf(a)));
    if (toRecord.length) {
      const values = toRecord.map((a) => `(${sqlString(p.owner)}, ${sqlString(a.user)}, ${sqlString(a.host)})`).join(', ');
      stmts.push({ sql: `INSERT IGNORE INTO ${BOOKKEEPING_TABLE} (owner, user, host) VALUES ${values}` });
      changes.push({ kind: 'sql', target: BOOKKEEPING_TABLE, action: `record as made by ${p.owner}: ${toRecord.map(keyOf).join(', ')}` });
    }
    const note = [out === undefined ? NOT_INSTALLED_NOTE : undefined, ...notes].filter(Boolean).join('; ') || undefined;
    if (changes.length === 0) return { changes: [], commands: [], note };
    return { changes, commands: [sqlCommand(stmts, p.binlog)], note };
  },
};
