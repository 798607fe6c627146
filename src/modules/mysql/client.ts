/**
 * What every MySQL / MariaDB module shares: the flavour, quoting, probes, commands and output parsing.
 *
 * Every statement goes through the host's own client (`mysql --batch`, root over the unix socket)
 * with the SQL on stdin: nothing of it — least of all a password — reaches argv, `ps` or a shell
 * history, and no port has to be opened or tunnelled for the control machine. State is read by
 * probes (heredocs in the engine's batched probe script), so a converged host costs no extra
 * round trip.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Facts, Probe, ProbeResult } from '../../facts/index.js';
import { ModuleError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';
import type { Command, ModuleContext } from '../types.js';

export type MysqlFlavor = 'mariadb' | 'mysql';

/** Debian ships MariaDB (`default-mysql-server`); Ubuntu ships MySQL 8 (`mysql-server`). */
export function flavorOf(facts: Facts, override?: MysqlFlavor): MysqlFlavor {
  return override ?? (facts.os.family === 'ubuntu' ? 'mysql' : 'mariadb');
}

export const CLIENT = 'mysql --batch --skip-column-names';
export const CLIENT_WITH_HEADERS = 'mysql --batch';
export const HEREDOC = 'PROVISION_SQL';

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
export function sqlScript(sql: string, headers = false): string {
  if (sql.split('\n').some((l) => l.trim() === HEREDOC)) throw new Error('SQL contains the heredoc delimiter');
  return `${headers ? CLIENT_WITH_HEADERS : CLIENT} <<'${HEREDOC}' || exit $?\n${sql}\n${HEREDOC}`;
}

export const CLIENT_CHECK = `command -v mysql >/dev/null 2>&1 || { echo 'the mysql client is not installed'; exit 127; }`;

export function sqlProbe(key: string, sql: string, headers = false): Probe {
  return { key, script: `${CLIENT_CHECK}\n${sqlScript(sql, headers)}` };
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
export function selectProbe(key: string, sql: string): Probe {
  return { key, shared: { group: SELECTS_GROUP, item: sql, read: readSelects, pick: pickSelect } };
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
export interface Stmt {
  sql: string;
  show?: string;
}

/**
 * Run statements through the local client, SQL on stdin. binlog: false keeps them out of the binary
 * log. `shell.before` / `shell.after` run on the host before the client / after it succeeded, in the
 * same command (a marker file set and cleared around a multi-step change).
 */
export function sqlCommand(stmts: Stmt[], binlog = true, shell: { before?: string; after?: string } = {}): Command {
  const all = binlog ? stmts : [{ sql: 'SET SESSION sql_log_bin = 0' }, ...stmts];
  return {
    kind: 'shell',
    cmd: [shell.before, CLIENT, shell.after].filter((x) => x !== undefined).join(' && '),
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
export function probeOutput(ctx: ModuleContext, key: string, what: string): string | undefined {
  const r: ProbeResult | undefined = ctx.results.get(key);
  if (r && r.code === 0) return r.stdout;
  if (ctx.check && ctx.predicted.anyChange) return undefined;
  throw new ModuleError(`cannot read ${what} from the server: ${(r?.stdout ?? 'no probe result').trim().split('\n').slice(-3).join(' ')}`);
}

export const NOT_INSTALLED_NOTE = 'the server is not installed or running yet; an earlier task in this run would provide it';

/** Schemas of the server itself: never application data, never dropped or compared. */
export const SYSTEM_SCHEMAS = ['mysql', 'information_schema', 'performance_schema', 'sys'];
export const SYSTEM_SCHEMAS_SQL = `(${SYSTEM_SCHEMAS.map(sqlString).join(', ')})`;

// Names: checked, so they can never break out of the SQL they are put in.
export const dbName = z.string().regex(/^[A-Za-z0-9_$-]{1,64}$/, 'a database name (letters, digits, _ $ -)');
export const userName = z.string().regex(/^[A-Za-z0-9_.-]{0,80}$/, 'a user name (letters, digits, _ . -; empty = anonymous)');
export const hostName = z.string().regex(/^[A-Za-z0-9_.%:/-]{1,255}$/, 'a host (address, name, %, localhost, netmask)');
export const password = z.union([z.string().min(1), z.instanceof(Secret)]);
export const flavor = z.enum(['mariadb', 'mysql']).optional();

export function reveal(p: string | Secret): string {
  return p instanceof Secret ? p.reveal() : p;
}
