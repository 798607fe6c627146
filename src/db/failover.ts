/**
 * `provision db failover [--force] [--to HOST]`: the primary does not answer; a replica takes its place.
 *
 *   1. who is what, from the servers that answer: a server that is writable and does not replicate
 *      means the primary is alive (refused: that is a switchover); the failed primary is the source
 *      the replicas replicate from; the candidates are the replicas that answer SQL;
 *   2. the failed primary fenced when it is reachable at all (SSH): read_only ON if its SQL still
 *      answers (and the candidates given a bounded wait for everything it executed), its database
 *      port closed by a recorded firewall rule (fence.ts), its config read-only for a restart. Not
 *      reachable: refused unless --force, since it may still take writes that nobody will ever see;
 *   3. each candidate's IO thread stopped (what it received can no longer grow), then a bounded wait
 *      for it to apply everything it received; its received and executed GTIDs reported;
 *   4. the most advanced candidate promoted (--to only when it is as advanced as every other); what
 *      may be lost said: exactly (the failed primary's own position, when it could be read) or as
 *      "anything it committed after what the target received";
 *   5. the new primary recorded where switchover records it (the mysql role refuses an inventory that
 *      disagrees); the other candidates replicate from it.
 */
import { sqlString } from '../modules/mysql/client.js';
import { errorMessage } from '../util/errors.js';
import { fenceScript, fenceRule, type FenceRecord } from './fence.js';
import { gtidAtLeast, gtidsBeyond } from './gtid.js';
import { stepLog, type DbServer, type ServerState } from './server.js';
import { follow, roleConfig, writeRecord, writeWhole, type ReplicationLogin } from './switchover.js';

/** One database host as failover finds it: SSH up (server), SQL answering (state), or why not. */
export interface HostView {
  name: string;
  address: string;
  server?: DbServer;
  state?: ServerState;
  sshError?: string;
  sqlError?: string;
}

export interface FailoverOptions {
  force: boolean;
  to?: string;
  /** Bound on each wait for a server to apply a GTID position. */
  catchUpTimeoutSeconds: number;
  log: (line: string) => void;
  login: (server: DbServer, source: DbServer) => ReplicationLogin;
  /** The database port of an inventory host (the one the fence closes). */
  port: (host: string) => number;
  now?: () => Date;
}

export interface Candidate {
  name: string;
  received: string;
  executed: string;
  /** Everything received was applied within the bound. */
  applied: boolean;
}

export interface FailoverResult {
  ok: boolean;
  from: string;
  to: string | null;
  promoted: boolean;
  /** 'read-only and port closed', 'port closed', or 'not fenced (--force)'. */
  fence: string;
  candidates: Candidate[];
  /** What may be lost: exact when the failed primary's position was read, else a bound. */
  possiblyLost: { exact: boolean; count: number | null; ranges: string[]; after: string; text: string } | null;
  steps: string[];
  warnings: string[];
  error?: string;
}

/** Refused; `changed` says what was done before the refusal (empty: nothing). */
export class FailoverRefused extends Error {
  constructor(
    message: string,
    readonly changed: string[] = [],
  ) {
    super(message);
  }
}

export interface FailoverPlan {
  failed: HostView;
  candidates: HostView[];
}

const isWritable = (s: ServerState) => !s.readOnly && !s.superReadOnly;

/** Step 1, from what answered: the failed primary and the candidates, or why there is no failover to do. */
export function planFailover(hosts: HostView[], o: { force: boolean; to?: string }): FailoverPlan {
  const live = hosts.filter((h) => h.state && isWritable(h.state) && !h.state.replica);
  if (live.length > 0) {
    throw new FailoverRefused(
      `${live.map((h) => h.name).join(', ')} answers and is writable: the primary is alive, this is not a failover. ` +
        `To move the writer, use provision db switchover --to HOST`,
    );
  }
  const sources = new Set(hosts.flatMap((h) => (h.state?.replica ? [h.state.replica.host] : [])));
  if (sources.size === 0) throw new FailoverRefused('no server that answers replicates from a primary: nothing to fail over from (provision db status shows what each server is)');
  if (sources.size > 1) throw new FailoverRefused(`the replicas replicate from different sources (${[...sources].join(', ')}): which primary failed is not clear; fix the topology by hand (provision db status)`);
  const source = [...sources][0]!;
  const failed = hosts.find((h) => h.address === source);
  if (!failed) throw new FailoverRefused(`the replicas replicate from ${source}, which is not a database host of the inventory`);
  const candidates = hosts.filter((h) => h !== failed && h.state?.replica?.host === source);
  if (candidates.length === 0) throw new FailoverRefused(`no replica of ${failed.name} answers SQL: there is nothing to promote`);
  if (o.to !== undefined) {
    const to = hosts.find((h) => h.name === o.to);
    if (to === failed) throw new FailoverRefused(`--to ${o.to} is the failed primary`);
    if (!to || !candidates.includes(to)) throw new FailoverRefused(`--to ${o.to} is not a replica of ${failed.name} that answers SQL (candidates: ${candidates.map((c) => c.name).join(', ')})`);
  }
  if (!failed.server && !o.force) {
    throw new FailoverRefused(
      `${failed.name} is unreachable over SSH (${failed.sshError ?? 'no connection'}), so it cannot be fenced: it may still take writes that no replica will see. ` +
        `Nothing was changed. --force promotes a replica anyway (and reports what may be lost)`,
    );
  }
  return { failed, candidates };
}

/** The candidate to promote: the most advanced (executed); --to only when it is as advanced as every other. Ties: inventory order. */
export function chooseTarget(candidates: Candidate[], atLeast: (a: string, b: string) => boolean, to?: string): Candidate {
  const best = candidates.find((c) => candidates.every((o) => atLeast(c.executed, o.executed)));
  if (to !== undefined) {
    const wanted = candidates.find((c) => c.name === to)!;
    if (!candidates.every((o) => atLeast(wanted.executed, o.executed))) {
      const ahead = candidates.filter((o) => !atLeast(wanted.executed, o.executed));
      throw new FailoverRefused(
        `--to ${to} is behind ${ahead.map((a) => `${a.name} (executed ${a.executed})`).join(', ')}: it executed ${wanted.executed || '(none)'}; promoting it would lose what they have`,
      );
    }
    return wanted;
  }
  if (!best) throw new FailoverRefused(`no candidate holds every other's transactions (${candidates.map((c) => `${c.name}: ${c.executed}`).join('; ')}): the replicas diverged, pick by hand`);
  return best;
}

export async function failover(hosts: HostView[], o: FailoverOptions): Promise<FailoverResult> {
  const { steps, log } = stepLog(o.log);
  const warnings: string[] = [];
  const plan = planFailover(hosts, o);
  const { failed } = plan;
  const flavor = plan.candidates[0]!.server!.flavor;
  const result: FailoverResult = { ok: false, from: failed.name, to: null, promoted: false, fence: 'not fenced (--force)', candidates: [], possiblyLost: null, steps, warnings };
  log(
    `${failed.name} (${failed.address}) is the failed primary: ${failed.server ? (failed.state ? 'SQL answers (read-only)' : `SSH answers, SQL does not (${failed.sqlError ?? '?'})`) : `unreachable over SSH (${failed.sshError ?? '?'})`}; ` +
      `candidates: ${plan.candidates.map((c) => c.name).join(', ')}`,
  );

  // Step 2: the fence. What the failed primary executed, when its SQL still answers: the exact loss.
  let failedExecuted: string | undefined;
  if (failed.server) {
    const s = failed.server;
    const hasIptables = (await s.tryShell('command -v iptables')).code === 0;
    if (!hasIptables && !o.force) {
      throw new FailoverRefused(`${failed.name} answers SSH but iptables is not installed there: its port cannot be closed. Nothing was changed. --force promotes a replica anyway`);
    }
    if (failed.state) {
      await s.query(s.flavor === 'mysql' ? 'SET GLOBAL read_only = ON;\nSET GLOBAL super_read_only = ON' : 'SET GLOBAL read_only = ON');
      failedExecuted = await s.executedGtids();
      log(`${failed.name}: read_only ON; it executed ${failedExecuted || '(none)'}`);
      // Still connected replicas can fetch the rest before the port closes.
      await Promise.all(plan.candidates.map((c) => c.server!.waitForGtids(failedExecuted!, o.catchUpTimeoutSeconds)));
    }
    // A restart of the fenced server brings it back read-only, not as a second writer.
    const config = roleConfig(s.flavor, false);
    await writeWhole(s, config.path, config.content);
    if (hasIptables) {
      const port = o.port(failed.name);
      const record: FenceRecord = { port, rule: fenceRule(port), since: (o.now?.() ?? new Date()).toISOString(), by: 'provision db failover' };
      await s.shell(fenceScript(port, record));
      result.fence = failed.state ? 'read-only and port closed' : 'port closed';
      log(`${failed.name}: fenced: port ${port} closed (${record.rule}, recorded in /var/lib/provision/db-fence.json; provision db rejoin lifts it), read_only in its config`);
    } else {
      result.fence = failed.state ? 'read-only (no iptables: port open, --force)' : 'not fenced (no iptables, --force)';
      warnings.push(`${failed.name}: iptables is not installed: its port stays open (--force)`);
    }
  } else {
    log(`${failed.name}: not fenced (unreachable; --force): if it comes back it may take writes again until provision db rejoin ${failed.name}`);
  }

  // Step 3: what each candidate received can no longer grow; it applies all of it (bounded).
  const readCandidate = async (h: HostView, applied: boolean): Promise<Candidate> => {
    const st = await h.server!.readState();
    return { name: h.name, received: st.replica?.received ?? '', executed: st.replica?.applied ?? st.executed, applied };
  };
  result.candidates = await Promise.all(
    plan.candidates.map(async (h) => {
      const s = h.server!;
      await s.query(s.flavor === 'mariadb' ? 'STOP SLAVE IO_THREAD' : 'STOP REPLICA IO_THREAD');
      const before = await readCandidate(h, false);
      const applied = await s.waitForGtids(before.received, o.catchUpTimeoutSeconds);
      const after = await readCandidate(h, applied);
      log(`${h.name}: received ${after.received || '(none)'}, executed ${after.executed || '(none)'}${applied ? ' (applied everything it received)' : ` (NOT everything applied within ${o.catchUpTimeoutSeconds} s)`}`);
      return after;
    }),
  );
  const mysqlCompare = new Map<string, boolean>();
  if (flavor === 'mysql') {
    // GTID sets compared by a server: GTID_SUBSET(b, a) for every pair.
    const probe = plan.candidates[0]!.server!;
    for (const a of result.candidates) for (const b of result.candidates) mysqlCompare.set(`${a.executed}|${b.executed}`, (await probe.value(`SELECT GTID_SUBSET(${sqlString(b.executed)}, ${sqlString(a.executed)})`)) === '1');
  }
  const atLeast = (a: string, b: string) => (flavor === 'mariadb' ? gtidAtLeast(a, b) : mysqlCompare.get(`${a}|${b}`) ?? false);
  let chosen: Candidate;
  try {
    chosen = chooseTarget(result.candidates, atLeast, o.to);
  } catch (err) {
    // Nothing promoted: the candidates replicate again (from the fenced server, which they cannot reach until it is unfenced).
    await Promise.all(plan.candidates.map((h) => h.server!.query(h.server!.startReplica).catch(() => undefined)));
    throw new FailoverRefused(errorMessage(err), steps);
  }
  const target = plan.candidates.find((c) => c.name === chosen.name)!.server!;
  result.to = target.name;

  // Step 4: what may be lost.
  if (failedExecuted !== undefined && flavor === 'mariadb') {
    const beyond = gtidsBeyond(failedExecuted, chosen.executed);
    result.possiblyLost = {
      exact: true,
      count: beyond.count,
      ranges: beyond.ranges,
      after: chosen.executed,
      text: beyond.count === 0 ? `none: ${target.name} executed everything ${failed.name} executed (${failedExecuted})` : `${beyond.count} transaction(s) of ${failed.name} not on ${target.name}: ${beyond.ranges.join(', ')}`,
    };
  } else {
    result.possiblyLost = {
      exact: false,
      count: null,
      ranges: [],
      after: chosen.received,
      text:
        `${failed.name}'s own position could not be read: any transaction it committed after ${chosen.received || '(nothing)'} (what ${target.name} received) is lost; ` +
        `${target.name} received ${chosen.received || '(none)'}, executed ${chosen.executed || '(none)'}${chosen.applied ? '' : ' (NOT all applied: the difference is lost too)'}. ` +
        `provision db rejoin ${failed.name} reports exactly what it held beyond that`,
    };
  }
  log(`possibly lost: ${result.possiblyLost.text}`);

  // Step 5: the promotion.
  await target.query(`${target.stopReplica};\n${target.flavor === 'mariadb' ? 'RESET SLAVE ALL' : 'RESET REPLICA ALL'}`);
  await target.query(target.flavor === 'mysql' ? 'SET GLOBAL super_read_only = OFF;\nSET GLOBAL read_only = OFF' : 'SET GLOBAL read_only = OFF');
  result.promoted = true;
  log(`${target.name}: replication cleared, read_only OFF: it is the primary`);

  const record = { primary: target.name, address: target.address, since: (o.now?.() ?? new Date()).toISOString(), by: 'provision db failover' };
  const reachable = hosts.filter((h) => h.server).map((h) => h.server!);
  for (const s of reachable) {
    try {
      await writeRecord(s, record);
    } catch (err) {
      warnings.push(`${s.name}: the new primary could not be recorded: ${errorMessage(err)}`);
    }
  }
  log(`recorded ${target.name} as the primary on ${reachable.map((s) => s.name).join(', ')}${failed.server ? '' : ` (not on ${failed.name}: unreachable)`}`);

  try {
    for (const h of plan.candidates) {
      if (h.server === target) continue;
      await follow(h.server!, target, o, { formerPrimary: false });
      log(`${h.name}: replicates from ${target.name}, both threads running, caught up`);
    }
    result.ok = true;
  } catch (err) {
    result.error = errorMessage(err);
    log(`FAILED after the promotion (${target.name} stays the primary): ${result.error}`);
  }
  for (const w of warnings) log(`WARNING: ${w}`);
  return result;
}
