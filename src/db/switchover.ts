/**
 * `provision db switchover --to HOST`: a planned move of the writer with no acknowledged write lost.
 *
 *   1. checks: exactly one primary; the target replicates from it, both threads running;
 *   2. the old primary's replication account for its own address, made on the old primary (it
 *      replicates to the target), so that it can follow the target afterwards;
 *   3. the old primary read-only (MySQL: super_read_only too); its client writes end: transactions
 *      with uncommitted changes get a bounded wait, then their connections are killed (said so; a
 *      killed transaction rolls back, its client never got an acknowledgement);
 *   4. the old primary's executed GTIDs read AFTER it became read-only: the last acknowledged write is
 *      in them; the target waits for them (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET, bounded),
 *      and the old primary's position is read again (a privileged writer ignores read_only): equal,
 *      or waited for again;
 *   5. the target promoted: replication stopped and cleared, read_only off;
 *      any failure up to here rolls back: the target replicates from the old primary again, the old
 *      primary is writable again (said so);
 *   6. the new primary recorded on every database host (PRIMARY_RECORD), which the mysql role reads, and
 *      each server's read_only in a config file of its own (a restart keeps the roles);
 *   7. the old primary replicates from the new one by GTID, verified (both threads, caught up); the
 *      other replicas are pointed at the new primary.
 */
import { PRIMARY_RECORD, type PrimaryRecord } from '../modules/mysql/topology.js';
import { account, nativePasswordHash } from '../modules/mysql/client.js';
import { identifiedClause } from '../modules/mysql/user.js';
import { changeSourceSql } from '../modules/mysql/replication.js';
import { quote } from '../util/quote.js';
import type { Secret } from '../util/secrets.js';
import { errorMessage } from '../util/errors.js';
import { stepLog, type DbServer, type ServerState } from './server.js';
import { summarize } from './status.js';

/** How a server logs in to its source: the mysql role's replication vars of that server's host. */
export interface ReplicationLogin {
  user: string;
  password: Secret;
  /** The port its source listens on (the source host's mysql_port). */
  port: number;
}

export interface SwitchoverOptions {
  to: string;
  /** Bound on the wait for uncommitted writes on the old primary before their connections are killed. */
  writesTimeoutSeconds: number;
  /** Bound on each wait for a server to apply a GTID position. */
  catchUpTimeoutSeconds: number;
  /** Each step as it happens. */
  log: (line: string) => void;
  /** The replication login each server uses toward `source` (its own host's role vars). */
  login: (server: DbServer, source: DbServer) => ReplicationLogin;
  now?: () => Date;
}

export interface SwitchoverResult {
  ok: boolean;
  from: string | null;
  to: string;
  /** The target became writable: past the point of no return. */
  promoted: boolean;
  rolledBack: boolean;
  /** From the old primary read-only to the new one writable (the writes' pause as the tool saw it). */
  readOnlyMs?: number;
  killedConnections: number;
  steps: string[];
  warnings: string[];
  error?: string;
}

/** Refused before anything changed. */
export class SwitchoverRefused extends Error {}

const POLL_MS = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Transactions with uncommitted changes on a server, other than ours: the writes still going on. */
const OPEN_WRITES_SQL = 'SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX WHERE trx_rows_modified > 0 AND trx_mysql_thread_id <> CONNECTION_ID()';

export async function switchover(servers: DbServer[], o: SwitchoverOptions): Promise<SwitchoverResult> {
  const { steps, log } = stepLog(o.log);
  const warnings: string[] = [];
  const target = servers.find((s) => s.name === o.to);
  if (!target) throw new SwitchoverRefused(`--to ${o.to}: not a database host of the inventory (db_primary, db_replica): ${servers.map((s) => s.name).join(', ')}`);

  const states = await Promise.all(servers.map((s) => s.readState()));
  const before = summarize(states);
  const result: SwitchoverResult = { ok: false, from: before.primary, to: target.name, promoted: false, rolledBack: false, killedConnections: 0, steps, warnings };
  if (!before.primary) throw new SwitchoverRefused(`no single primary, nothing changed: ${before.problems.join('; ')}`);
  const primary = servers.find((s) => s.name === before.primary)!;
  if (primary === target) {
    log(`${target.name} is already the primary: nothing to do`);
    return { ...result, ok: true };
  }
  const t = states.find((s) => s.name === target.name)!.replica;
  if (!t || t.host !== primary.address || t.io !== 'Yes' || t.sql !== 'Yes') {
    throw new SwitchoverRefused(
      `${target.name} must replicate from the primary ${primary.name} (${primary.address}) with both threads running to take over; it ` +
        (t ? `replicates from ${t.host} (IO ${t.io || 'off'}, SQL ${t.sql || 'off'}${t.sqlErrno ? `, SQL error ${t.sqlErrno}: ${t.sqlError}` : ''})` : 'does not replicate') +
        '. Nothing was changed',
    );
  }
  log(`${primary.name} (${primary.address}) is the primary, ${target.name} replicates from it (lag ${t.lag ?? 'NULL'} s): switching over to ${target.name}`);

  // The old primary must be able to follow the target: its login, made on the old primary while it is
  // writable, replicates to the target with everything else.
  const back = o.login(primary, target);
  await ensureReplicationAccount(primary, primary.address, back);
  log(`${primary.name}: replication account ${back.user}@${primary.address} present (made on the primary, replicated), for it to follow ${target.name} afterwards`);

  const mysql8 = primary.flavor === 'mysql';
  let readOnlyAt = 0;
  let stopped = false;
  let reset = false;
  try {
    // lock_wait_timeout bounds how long SET GLOBAL read_only waits for the global read lock.
    await primary.query(`SET SESSION lock_wait_timeout = ${o.writesTimeoutSeconds};\nSET GLOBAL read_only = ON${mysql8 ? ';\nSET GLOBAL super_read_only = ON' : ''}`);
    readOnlyAt = Date.now();
    log(`${primary.name}: read_only ON${mysql8 ? ', super_read_only ON' : ''}: new writes are refused from here`);
    result.killedConnections = await endWrites(primary, o.writesTimeoutSeconds, log);

    let position = await primary.executedGtids();
    log(`${primary.name}: executed GTIDs after read-only: ${position || '(none)'}`);
    for (let round = 1; ; round++) {
      const reached = await target.waitForGtids(position, o.catchUpTimeoutSeconds);
      if (!reached) {
        const st = await target.readState();
        throw new Error(`${target.name} did not apply ${primary.name}'s GTIDs ${position} within ${o.catchUpTimeoutSeconds} s (it applied ${st.replica?.applied ?? st.executed}, received ${st.replica?.received ?? '?'})`);
      }
      const again = await primary.executedGtids();
      if (again === position) break;
      if (round >= 3) throw new Error(`${primary.name}'s position keeps moving while read-only (${position} → ${again}): a privileged account is writing`);
      log(`${primary.name}: its position moved to ${again} after read-only (a privileged account wrote): waiting for it too`);
      position = again;
    }
    log(`${target.name}: applied every transaction of ${primary.name} (${target.flavor === 'mariadb' ? 'MASTER_GTID_WAIT' : 'WAIT_FOR_EXECUTED_GTID_SET'} of ${position || '(none)'} returned 0; position re-read, unchanged)`);

    await target.query(target.stopReplica);
    stopped = true;
    await target.query(target.flavor === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL');
    reset = true;
    log(`${target.name}: replication stopped and cleared (${target.flavor === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL'})`);
    await target.query(target.flavor === 'mysql' ? 'SET GLOBAL super_read_only = OFF;\nSET GLOBAL read_only = OFF' : 'SET GLOBAL read_only = OFF');
    result.promoted = true;
    result.readOnlyMs = Date.now() - readOnlyAt;
    log(`${target.name}: read_only OFF: it is the primary (writes were refused for ${result.readOnlyMs} ms)`);
  } catch (err) {
    result.error = errorMessage(err);
    log(`FAILED before the promotion: ${result.error}`);
    await rollBack(primary, target, { stopped, reset, readOnly: readOnlyAt > 0 }, o, log, warnings);
    result.rolledBack = true;
    return result;
  }

  // Past the point of no return: from here a failure is reported, never undone.
  const record: PrimaryRecord = { primary: target.name, address: target.address, since: (o.now?.() ?? new Date()).toISOString(), by: 'provision db switchover' };
  for (const s of servers) {
    try {
      await writeRecord(s, record);
    } catch (err) {
      warnings.push(`${s.name}: the new primary could not be recorded: ${errorMessage(err)}`);
    }
  }
  log(`recorded ${target.name} as the primary in ${PRIMARY_RECORD} on ${servers.map((s) => s.name).join(', ')} (the mysql role refuses an inventory that disagrees), and read_only in 61-provision-primary.cnf (a restart keeps each server's role)`);

  try {
    await follow(primary, target, o, { formerPrimary: true });
    log(`${primary.name}: replicates from ${target.name} by GTID, both threads running, caught up`);
    for (const s of servers) {
      if (s === primary || s === target) continue;
      await follow(s, target, o, { formerPrimary: false });
      log(`${s.name}: replicates from ${target.name}, both threads running, caught up`);
    }
    result.ok = true;
  } catch (err) {
    result.error = errorMessage(err);
    log(`FAILED after the promotion (${target.name} stays the primary): ${result.error}`);
  }
  for (const w of warnings) log(`WARNING: ${w}`);
  return result;
}

/**
 * The account `login` uses from `address`, made on `on` (a primary: it replicates to the others) by
 * its password hash, so that the clear password never enters the binary log. TLS required (REQUIRE
 * SSL), also of an account that was already there: the mysql role makes every replication account
 * so, and an account made here otherwise would be "changed" by the next converge (and would let a
 * replica log in in clear where the server did not require secure transport).
 */
export async function ensureReplicationAccount(on: DbServer, address: string, login: ReplicationLogin): Promise<void> {
  const acct = account(login.user, address);
  await on.query(
    [
      `CREATE USER IF NOT EXISTS ${acct} ${identifiedClause(nativePasswordHash(login.password.reveal()), on.flavor)} REQUIRE SSL`,
      `ALTER USER ${acct} REQUIRE SSL`,
      `GRANT REPLICATION SLAVE ON *.* TO ${acct}`,
    ].join(';\n'),
  );
}

/** Wait (bounded) for uncommitted writes to end; kill the connections that still hold some. Returns how many were killed. */
async function endWrites(primary: DbServer, timeoutSeconds: number, log: (m: string) => void): Promise<number> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  let ids: string[] = [];
  for (;;) {
    ids = (await primary.query(OPEN_WRITES_SQL)).split('\n').filter(Boolean);
    if (ids.length === 0) {
      log(`${primary.name}: no transaction with uncommitted writes left`);
      return 0;
    }
    if (Date.now() >= deadline) break;
    await sleep(POLL_MS);
  }
  for (const id of ids) {
    // Gone meanwhile (committed or ended): nothing to kill.
    await primary.query(`KILL CONNECTION ${Number(id)}`).catch(() => undefined);
  }
  log(`${primary.name}: killed ${ids.length} connection(s) (${ids.join(', ')}) still holding uncommitted writes after ${timeoutSeconds} s: their transactions roll back, their clients were never acknowledged`);
  return ids.length;
}

/** Before the promotion only: the target follows the old primary again, the old primary takes writes again. */
async function rollBack(
  primary: DbServer,
  target: DbServer,
  done: { stopped: boolean; reset: boolean; readOnly: boolean },
  o: SwitchoverOptions,
  log: (m: string) => void,
  warnings: string[],
): Promise<void> {
  try {
    if (done.reset) await follow(target, primary, o, { formerPrimary: false, verify: false });
    else if (done.stopped) await target.query(target.startReplica);
    if (done.stopped) log(`rolled back: ${target.name} replicates from ${primary.name} again`);
  } catch (err) {
    warnings.push(`rollback: ${target.name} could not be pointed back at ${primary.name}: ${errorMessage(err)}`);
  }
  try {
    await primary.query(primary.flavor === 'mysql' ? 'SET GLOBAL super_read_only = OFF;\nSET GLOBAL read_only = OFF' : 'SET GLOBAL read_only = OFF');
    log(`rolled back: ${primary.name} is writable again, still the primary`);
  } catch (err) {
    warnings.push(`rollback: ${primary.name} could not be made writable again: ${errorMessage(err)}; no server takes writes, fix by hand`);
  }
  for (const w of warnings) log(`WARNING: ${w}`);
}

/**
 * `replica` replicates from `source` by GTID, the way the mysql role configures it. A former primary's
 * own transactions are in its binary log, not in gtid_slave_pos (MariaDB): the position it asks the
 * source for is its binary log's, or it would ask for its own transactions again.
 */
export async function follow(
  replica: DbServer,
  source: DbServer,
  o: Pick<SwitchoverOptions, 'login' | 'catchUpTimeoutSeconds'>,
  opts: { formerPrimary: boolean; verify?: boolean; seeded?: boolean },
): Promise<void> {
  const login = o.login(replica, source);
  const change = changeSourceSql({ host: source.address, port: login.port, user: login.user, password: login.password }, replica.flavor);
  const statements = [
    // A former primary, or a server just loaded from a copy, has no replication to stop (MariaDB refuses
    // STOP SLAVE without a source); a loaded copy set its own position (the dump's gtid_slave_pos).
    ...(opts.formerPrimary || opts.seeded ? [] : [replica.stopReplica]),
    ...(replica.flavor === 'mariadb' && opts.formerPrimary ? ['SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos'] : []),
    change.sql,
    replica.startReplica,
    ...(replica.flavor === 'mysql' ? ['SET GLOBAL super_read_only = ON'] : []),
  ];
  await replica.query(`SET GLOBAL read_only = ON;\n${statements.join(';\n')}`);
  if (opts.verify === false) return;
  const deadline = Date.now() + o.catchUpTimeoutSeconds * 1000;
  let st: ServerState;
  for (;;) {
    st = await replica.readState();
    const r = st.replica;
    if (r?.io === 'Yes' && r.sql === 'Yes') break;
    if (r?.sqlErrno) throw new Error(`${replica.name}: replication from ${source.name} broke: SQL error ${r.sqlErrno}: ${r.sqlError}`);
    if (Date.now() >= deadline) throw new Error(`${replica.name}: replication from ${source.name} did not start within ${o.catchUpTimeoutSeconds} s (IO ${r?.io || 'off'}, SQL ${r?.sql || 'off'}${r?.ioErrno ? `, IO error ${r.ioErrno}: ${r.ioError}` : ''})`);
    await sleep(POLL_MS * 2);
  }
  const position = await source.executedGtids();
  if (!(await replica.waitForGtids(position, o.catchUpTimeoutSeconds))) throw new Error(`${replica.name} did not reach ${source.name}'s position ${position} within ${o.catchUpTimeoutSeconds} s`);
}

/**
 * The server's role in its config too, read after the role's own 60-provision.cnf: a restart before
 * the inventory is updated keeps the old primary read-only (the role's config still calls it the
 * primary) and the new one writable. The role's config agrees with it once the inventory does.
 */
export function roleConfig(flavor: DbServer['flavor'], primary: boolean): { path: string; content: string } {
  const dir = flavor === 'mariadb' ? '/etc/mysql/mariadb.conf.d' : '/etc/mysql/mysql.conf.d';
  const lines = [`read_only = ${primary ? 'OFF' : 'ON'}`, ...(flavor === 'mysql' ? [`super_read_only = ${primary ? 'OFF' : 'ON'}`] : [])];
  return {
    path: `${dir}/61-provision-primary.cnf`,
    content: `# Written by provision db switchover: this server is ${primary ? 'the primary' : 'a replica'} (see ${PRIMARY_RECORD}).\n[mysqld]\n${lines.join('\n')}\n`,
  };
}

/** A file written whole (a temporary file renamed over the old one). */
export async function writeWhole(s: DbServer, file: string, content: string): Promise<void> {
  const dir = file.replace(/\/[^/]*$/, '');
  const tmp = `${file}.tmp`;
  await s.shell(`mkdir -p ${quote(dir)} && umask 022 && cat > ${quote(tmp)} && mv -f ${quote(tmp)} ${quote(file)}`, content);
}

/** The record, and the server's role in its config. */
export async function writeRecord(s: DbServer, record: PrimaryRecord): Promise<void> {
  await writeWhole(s, PRIMARY_RECORD, JSON.stringify(record) + '\n');
  const config = roleConfig(s.flavor, s.name === record.primary);
  await writeWhole(s, config.path, config.content);
}
