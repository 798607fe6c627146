/**
 * A replica's first setup: look at the server before anything is reset, refuse one that holds data
 * of its own, and seed it from a consistent copy of its primary streamed over SSH.
 *
 * The copy is the primary's own dump tool in one transaction with the GTID position it stands for
 * (`mariadb-dump --single-transaction --gtid --master-data`, MySQL `mysqldump --single-transaction
 * --set-gtid-purged=ON`), piped through the control machine from one SSH channel into the other:
 * it never touches a disk there, and needs no binary log older than the dump (a primary whose old
 * binary logs were purged still gets a complete replica).
 */
import { STATE_DIR } from '../../facts/index.js';
import type { Connection, RemoteProcess } from '../../transport/index.js';
import { ConnectionError, ModuleError } from '../../util/errors.js';
import type { ModuleContext } from '../types.js';
import { CLIENT, parseRows, sqlIdent, SYSTEM_SCHEMAS_SQL, type MysqlFlavor, type Stmt } from './client.js';

/** Set before a seed resets the server, removed once replication is configured: a seed that did not finish. */
export const SEED_MARKER = `${STATE_DIR}/mysql-seed-incomplete`;

/** What a server holds that a first setup would throw away. */
export interface ServerContents {
  /** GTID positions that are not empty: [variable, value]. */
  gtid: Array<[string, string]>;
  /** Non-system databases with their table counts (empty ones included). */
  databases: Array<{ name: string; tables: number }>;
  /** An earlier seed reset this server and did not finish: what it holds is a partial copy of the primary. */
  seedIncomplete: boolean;
}

/** The variables that say a server has transactions of its own (or of a primary it followed). */
export function gtidVariables(f: MysqlFlavor): string[] {
  return f === 'mariadb' ? ['gtid_binlog_pos', 'gtid_current_pos'] : ['gtid_executed'];
}

/** Non-system databases and how many tables each holds. */
export const DATABASES_SQL =
  'SELECT s.SCHEMA_NAME, COUNT(t.TABLE_NAME) FROM information_schema.SCHEMATA s ' +
  'LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME ' +
  `WHERE s.SCHEMA_NAME NOT IN ${SYSTEM_SCHEMAS_SQL} GROUP BY s.SCHEMA_NAME ORDER BY s.SCHEMA_NAME;`;

export function parseContents(vars: Record<string, string>, databasesText: string, seedText: string, f: MysqlFlavor): ServerContents {
  return {
    gtid: gtidVariables(f)
      .map((v): [string, string] => [v, (vars[v] ?? '').replace(/\s+/g, '')])
      .filter(([, value]) => value !== ''),
    databases: parseRows(databasesText).map((r) => ({ name: r[0] ?? '', tables: Number(r[1] ?? 0) })),
    seedIncomplete: seedText.split('\n').includes('incomplete'),
  };
}

export function holdsData(c: ServerContents): boolean {
  return c.gtid.length > 0 || c.databases.some((d) => d.tables > 0);
}

export function describeContents(c: ServerContents): string {
  const parts: string[] = [];
  if (c.gtid.length) parts.push(c.gtid.map(([k, v]) => `${k} ${v}`).join(', '));
  const withTables = c.databases.filter((d) => d.tables > 0);
  if (withTables.length) parts.push(`databases ${withTables.map((d) => `${d.name} (${d.tables} table${d.tables === 1 ? '' : 's'})`).join(', ')}`);
  return parts.join('; ') || 'nothing';
}

/** The failed task of a first setup on a server that holds data and was not allowed to lose it. */
export function refusal(c: ServerContents, seedFrom: string): ModuleError {
  return new ModuleError(
    `refusing to make this server a replica: it holds data of its own (${describeContents(c)}), which seeding it from ${seedFrom} would replace. ` +
      `Nothing was changed. To replace it with a copy of ${seedFrom}, set mysql_replica_reinitialize: true in this host's vars (module parameter reinitialize: true)`,
  );
}

/** The primary's consistent dump: one transaction, the GTID position it stands for, accounts and routines included. */
export function dumpCommand(f: MysqlFlavor): string {
  // The help tables come with the server package, which the replica has too: three quarters of a
  // small site's dump, left out.
  const help = ['help_topic', 'help_keyword', 'help_relation', 'help_category'].map((t) => `--ignore-table=mysql.${t}`).join(' ');
  const common = `--single-transaction --all-databases --routines --events --triggers --hex-blob --flush-privileges ${help}`;
  // MariaDB: --master-data=1 with --gtid ends the dump with SET GLOBAL gtid_slave_pos (after the data,
  // so a copy cut short never claims a position). MySQL: SET @@GLOBAL.GTID_PURGED at the top, the
  // binary log coordinates only as a comment (the replica uses auto-position).
  return f === 'mariadb' ? `mariadb-dump ${common} --gtid --master-data=1` : `mysqldump ${common} --set-gtid-purged=ON --source-data=2`;
}

/**
 * Before the copy: no replication configuration, none of the server's own GTIDs, and (reinitialize)
 * none of its databases, so that what is left is exactly the primary's copy. Kept out of the binary log.
 */
export function prepareStatements(f: MysqlFlavor, opts: { logBin: boolean; drop: string[] }): Stmt[] {
  const drops = opts.drop.map((d) => ({ sql: `DROP DATABASE IF EXISTS ${sqlIdent(d)}` }));
  if (f === 'mariadb') {
    return [{ sql: 'STOP SLAVE' }, { sql: 'RESET SLAVE ALL' }, ...drops, ...(opts.logBin ? [{ sql: 'RESET MASTER' }] : []), { sql: "SET GLOBAL gtid_slave_pos = ''" }];
  }
  // super_read_only refuses DROP, RESET MASTER and the copy itself; restored after START REPLICA.
  return [{ sql: 'STOP REPLICA' }, { sql: 'RESET REPLICA ALL' }, { sql: 'SET GLOBAL super_read_only = OFF' }, ...drops, ...(opts.logBin ? [{ sql: 'RESET MASTER' }] : [])];
}

/** What the load reads before and after the dump itself. */
export const LOAD_PREFIX = 'SET SESSION sql_log_bin = 0;\n';
const LOADED = 'provision: copy loaded';
export const LOAD_SUFFIX = `\nSELECT '${LOADED}';\n`;

/** A peer's connection trouble fails this task; it does not make this host unreachable. */
async function onPeer<T>(peer: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConnectionError) throw new ModuleError(`${what} on ${peer}: ${err.message}`);
    throw err;
  }
}

function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' ').slice(-400);
}

/**
 * Pipe `source`'s stdout into `sink`'s stdin, between LOAD_PREFIX and LOAD_SUFFIX. The suffix (and
 * EOF) is sent only when the source exited 0, so a load never reports success on a copy cut short;
 * when either side fails, the other is closed rather than left waiting. Returns the bytes copied.
 */
export async function streamInto(source: RemoteProcess, sink: RemoteProcess, peer: string): Promise<number> {
  let bytes = 0;
  let loaded = '';
  source.stdout.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  sink.stdout.on('data', (d: Buffer) => {
    loaded = (loaded + d.toString('utf8')).slice(-4096);
  });
  // Write errors after the sink went away are reported through sink.done.
  sink.stdin.on('error', () => undefined);
  sink.stdin.write(LOAD_PREFIX);
  source.stdout.pipe(sink.stdin, { end: false });

  const sourceEnded = new Promise<void>((res) => {
    source.stdout.once('end', res);
    source.stdout.once('close', res);
  });
  const sourceDone = onPeer(peer, 'the dump', () => source.done).then(async (r) => (await sourceEnded, { side: 'source' as const, r }));
  const sinkDone = sink.done.then((r) => ({ side: 'sink' as const, r }));
  let first: Awaited<typeof sourceDone> | Awaited<typeof sinkDone>;
  try {
    first = await Promise.race([sourceDone, sinkDone]);
  } catch (err) {
    source.close();
    sink.close();
    throw err;
  }
  if (first.side === 'sink') {
    source.stdout.unpipe(sink.stdin);
    source.close();
    await sourceDone.catch(() => undefined);
    throw new ModuleError(`loading the copy of ${peer} into this server failed (exit ${first.r.code}): ${lastLines(first.r.stderr) || 'no message'}`);
  }
  if (first.r.code !== 0) {
    source.stdout.unpipe(sink.stdin);
    sink.close();
    await sinkDone.catch(() => undefined);
    throw new ModuleError(
      `the dump on ${peer} failed (exit ${first.r.code}): ${lastLines(first.r.stderr) || 'no message'}; this server holds a partial copy, which the next run replaces`,
    );
  }
  sink.stdin.end(LOAD_SUFFIX);
  const { r } = await sinkDone;
  if (r.code !== 0 || !loaded.includes(LOADED)) {
    throw new ModuleError(`loading the copy of ${peer} into this server failed (exit ${r.code}): ${lastLines(r.stderr) || 'no message'}`);
  }
  return bytes;
}

/** The seed itself: the primary's dump streamed into this server's client, through the control machine. */
export async function seedFromPeer(ctx: ModuleContext, conn: Connection, peer: string, f: MysqlFlavor): Promise<{ bytes: number; ms: number }> {
  if (!ctx.peer) throw new ModuleError(`this run cannot open a connection to ${peer}: the replica cannot be seeded`);
  const started = Date.now();
  const primary = await onPeer(peer, 'connecting', () => ctx.peer!(peer));
  const spawnOn = (c: Connection, cmd: string): Promise<RemoteProcess> => {
    if (!c.spawn) throw new ModuleError(`the connection to ${c.hostName} cannot stream a command: the replica cannot be seeded`);
    return c.spawn(cmd);
  };
  const sink = await spawnOn(conn, CLIENT);
  let source: RemoteProcess;
  try {
    source = await onPeer(peer, 'starting the dump', () => spawnOn(primary, dumpCommand(f)));
  } catch (err) {
    sink.close();
    throw err;
  }
  const bytes = await streamInto(source, sink, peer);
  return { bytes, ms: Date.now() - started };
}

/** A SQL runner on the primary (stdout of the batch client), for the comparison after catch-up. */
export async function primaryRunner(ctx: ModuleContext, peer: string): Promise<(sql: string) => Promise<string>> {
  if (!ctx.peer) throw new ModuleError(`this run cannot open a connection to ${peer}: the replica cannot be compared with it`);
  const primary = await onPeer(peer, 'connecting', () => ctx.peer!(peer));
  return async (sql) => {
    const r = await onPeer(peer, 'a query', () => primary.exec(CLIENT, { stdin: sql }));
    if (r.code !== 0) throw new ModuleError(`a query on ${peer} failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
    return r.stdout;
  };
}

export function describeBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
}
