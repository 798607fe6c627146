/**
 * `provision db rejoin HOST`: a former primary (or any broken replica) comes back as a replica of the
 * current primary from a consistent copy of it, never by replaying its own history (after a failover
 * it may hold transactions the new primary never had; gtid_strict_mode would stop on them, and
 * skipping them would silently fork the data).
 *
 *   1. the current primary: the one writable, non-replicating server among the OTHER hosts;
 *   2. HOST fenced again (its port closed, read_only if its SQL answers), so that nothing writes to it
 *      while it is rebuilt; what it holds beyond the primary reported (the transactions a forced
 *      failover lost: they stay readable in the set-aside binary logs);
 *   3. its server stopped, its data directory MOVED aside (never deleted), a new empty one made,
 *      its config marked read-only (61-provision-primary.cnf) and the primary recorded, then started;
 *   4. the primary's consistent dump (one transaction, with the GTID position it stands for: seed.ts)
 *      streamed into it through the control machine;
 *   5. it replicates from the primary by GTID, verified (both threads running, caught up); the fence
 *      lifted; CHECKSUM TABLE on every application table equal to the primary's at one GTID position.
 */
import { CLIENT, sqlString } from '../modules/mysql/client.js';
import { compareWithPrimary } from '../modules/mysql/compare.js';
import { dumpCommand, streamInto, describeBytes } from '../modules/mysql/seed.js';
import { errorMessage } from '../util/errors.js';
import { quote } from '../util/quote.js';
import { fenceRule, fenceScript, unfenceScript, type FenceRecord } from './fence.js';
import { gtidsBeyond } from './gtid.js';
import { stepLog, type DbServer } from './server.js';
import { summarize } from './status.js';
import { ensureReplicationAccount, follow, writeRecord, type ReplicationLogin } from './switchover.js';

export interface RejoinOptions {
  host: string;
  catchUpTimeoutSeconds: number;
  log: (line: string) => void;
  login: (server: DbServer, source: DbServer) => ReplicationLogin;
  port: (host: string) => number;
  now?: () => Date;
}

export interface RejoinResult {
  ok: boolean;
  host: string;
  primary: string;
  /** Where its old data directory was moved. */
  setAside: string | null;
  /** Transactions it held that the primary does not have (null: its SQL did not answer, not known). */
  diverged: { count: number; ranges: string[] } | null;
  copiedBytes: number;
  compared: string | null;
  steps: string[];
  warnings: string[];
  error?: string;
}

export class RejoinRefused extends Error {}

/** The server's systemd unit and its default data directory. */
function serviceOf(s: DbServer): string {
  return s.flavor === 'mariadb' ? 'mariadb' : 'mysql';
}

/** A new, empty data directory: the flavour's own initialisation, as the package does it. */
function initCommand(s: DbServer, datadir: string): string {
  return s.flavor === 'mariadb'
    ? `mariadb-install-db --user=mysql --datadir=${quote(datadir)} --skip-test-db >/dev/null`
    : `mysqld --initialize-insecure --user=mysql --datadir=${quote(datadir)}`;
}

export async function rejoin(servers: DbServer[], o: RejoinOptions): Promise<RejoinResult> {
  const { steps, log } = stepLog(o.log);
  const warnings: string[] = [];
  const host = servers.find((s) => s.name === o.host);
  if (!host) throw new RejoinRefused(`${o.host} does not answer over SSH: nothing to rejoin`);
  const others = servers.filter((s) => s !== host);
  const view = summarize(await Promise.all(others.map((s) => s.readState())));
  if (!view.primary) {
    throw new RejoinRefused(`no primary among the other database hosts (${others.map((s) => s.name).join(', ') || 'none'}): ${view.problems.join('; ')}. Nothing was changed (is ${o.host} the primary?)`);
  }
  const primary = others.find((s) => s.name === view.primary)!;
  const result: RejoinResult = { ok: false, host: host.name, primary: primary.name, setAside: null, diverged: null, copiedBytes: 0, compared: null, steps, warnings };
  log(`${primary.name} is the primary: ${host.name} rejoins as its replica from a copy of it`);

  // Step 2: nothing writes to it while it is rebuilt; what it held beyond the primary, said.
  const port = o.port(host.name);
  const record: FenceRecord = { port, rule: fenceRule(port), since: (o.now?.() ?? new Date()).toISOString(), by: 'provision db rejoin' };
  const fenced = await host.tryShell(fenceScript(port, record));
  if (fenced.code === 0) log(`${host.name}: fenced while it is rebuilt (port ${port} closed)`);
  else warnings.push(`${host.name}: could not close port ${port} (${(fenced.stderr || fenced.stdout).trim()}): clients may reach it while it is rebuilt`);
  let datadir = '/var/lib/mysql';
  try {
    await host.query(host.flavor === 'mysql' ? 'SET GLOBAL read_only = ON;\nSET GLOBAL super_read_only = ON' : 'SET GLOBAL read_only = ON');
    datadir = (await host.value('SELECT @@GLOBAL.datadir')).replace(/\/+$/, '') || datadir;
    const own = await host.executedGtids();
    const primaryExecuted = await primary.executedGtids();
    if (host.flavor === 'mariadb') {
      result.diverged = gtidsBeyond(own, primaryExecuted);
      log(
        result.diverged.count === 0
          ? `${host.name}: holds nothing the primary does not (${own || 'empty'})`
          : `${host.name}: holds ${result.diverged.count} transaction(s) the primary never had: ${result.diverged.ranges.join(', ')} (its position ${own}, the primary's ${primaryExecuted}); they stay in the set-aside data directory's binary logs`,
      );
    } else {
      const extra = await host.value(`SELECT GTID_SUBTRACT(${sqlString(own)}, ${sqlString(primaryExecuted)})`);
      log(`${host.name}: transactions the primary never had: ${extra || 'none'}`);
    }
  } catch (err) {
    log(`${host.name}: its SQL does not answer (${errorMessage(err).slice(0, 160)}): what it held beyond the primary is not known; its data is set aside whole`);
  }

  // Step 3: the old data moved aside, a new empty server, read-only from its first start.
  const stamp = (o.now?.() ?? new Date()).toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  const aside = `${datadir}.before-rejoin-${stamp}`;
  const service = serviceOf(host);
  await host.shell(`systemctl stop ${service}`);
  await host.shell(`[ ! -e ${quote(aside)} ] && mv ${quote(datadir)} ${quote(aside)} && install -d -o mysql -g mysql -m 0750 ${quote(datadir)}`);
  result.setAside = aside;
  log(`${host.name}: ${service} stopped, its data directory moved to ${aside} (kept, not deleted)`);
  const recorded = { primary: primary.name, address: primary.address, since: (o.now?.() ?? new Date()).toISOString(), by: 'provision db rejoin' };
  await writeRecord(host, recorded);
  await host.shell(`${initCommand(host, datadir)} && systemctl start ${service} && { i=0; until mysqladmin ping >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 60 ] && exit 1; sleep 1; done; }`);
  log(`${host.name}: a new empty data directory, started read-only (61-provision-primary.cnf; ${primary.name} recorded as the primary)`);

  try {
    // Its replication account on the primary (a former primary never had one: the role makes one per
    // replica's address), made before the copy so that the copy holds it too.
    const login = o.login(host, primary);
    await ensureReplicationAccount(primary, host.address, login);
    log(`${primary.name}: replication account ${login.user}@${host.address} present (by its password hash) for ${host.name} to follow it`);
    // Step 4: the primary's consistent copy streamed into it.
    await host.query(host.flavor === 'mariadb' ? "RESET MASTER;\nSET GLOBAL gtid_slave_pos = ''" : 'SET GLOBAL super_read_only = OFF;\nRESET MASTER');
    const sink = await host.spawn(CLIENT);
    const source = await primary.spawn(dumpCommand(primary.flavor)).catch((err: unknown) => {
      sink.close();
      throw err;
    });
    result.copiedBytes = await streamInto(source, sink, primary.name);
    log(`${host.name}: loaded a consistent copy of ${primary.name} (${describeBytes(result.copiedBytes)}, ${host.flavor === 'mariadb' ? 'mariadb-dump --single-transaction --gtid --master-data' : 'mysqldump --single-transaction --set-gtid-purged'})`);

    // Step 5: replication, verified; the fence lifted; the tables compared.
    await follow(host, primary, o, { formerPrimary: false, seeded: true });
    log(`${host.name}: replicates from ${primary.name} by GTID, both threads running, caught up`);
    const lifted = await host.shell(unfenceScript(port));
    log(`${host.name}: fence ${lifted.includes('lifted') ? 'lifted' : 'was not there'} (port ${port} open again)`);
    const runner = (s: DbServer) => (sql: string) => s.query(sql);
    result.compared = await compareWithPrimary(runner(primary), runner(host), { flavor: host.flavor, primaryName: primary.name, deadline: Date.now() + o.catchUpTimeoutSeconds * 1000 });
    log(`${host.name}: ${result.compared}`);
    result.ok = !result.compared.startsWith('tables not compared');
    if (!result.ok) result.error = result.compared;
  } catch (err) {
    result.error = errorMessage(err);
    log(`FAILED: ${result.error}; ${host.name} stays fenced, its old data in ${aside}; run provision db rejoin ${host.name} again once the cause is fixed`);
  }
  for (const w of warnings) log(`WARNING: ${w}`);
  return result;
}
