import { gatherFacts, type Facts } from '../facts/index.js';
import { prepareHosts, selectHosts, type Host, type Inventory } from '../inventory/index.js';
import { getRole } from '../roles/index.js';
import { emptyCounts, type HostCounts, type Reporter, type RunEvent } from '../report/events.js';
import type { Connection } from '../transport/index.js';
import { mapLimit } from '../util/concurrency.js';
import { ConnectionError, errorMessage, PlaybookError, ProvisionError } from '../util/errors.js';
import { mask } from '../util/secrets.js';
import { ConnectionPool } from './connect.js';
import { expandPlay, roleVars } from './expand.js';
import { HostRun, type HostPlay, type RunFlags } from './host-run.js';
import { checkSecretsInParams, type Playbook } from './playbook.js';

export const EXIT = {
  OK: 0,
  FAILED: 1,
  CHANGED: 2,
  UNREACHABLE: 3,
  INPUT: 4,
  DRIFT_REFUSED: 5,
} as const;

export interface RunOptions extends RunFlags {
  inventory: Inventory;
  playbook: Playbook;
  limit?: string;
  forks?: number;
  serial?: number;
  reporter: Reporter;
}

export interface RunResult {
  exitCode: number;
  hosts: Map<string, HostRun | { unreachable: string; counts: HostCounts }>;
  wallMs: number;
}

/** Roles' own checks of their vars, before any connection: bad input never half-applies a host. */
export function validateRoleVars(inventory: Inventory, playbook: Playbook, hosts: string[]): void {
  for (const play of playbook.plays) {
    const targets = selectHosts(inventory, play.hosts).filter((h) => hosts.includes(h));
    for (const roleName of play.roles) {
      const role = getRole(roleName)!;
      if (!role.validate) continue;
      for (const h of targets) {
        const host = inventory.hosts.get(h)!;
        const problems = role.validate(roleVars(roleName, host, play), host);
        if (problems.length) {
          throw new PlaybookError(`${inventory.file}: host ${h}, role ${roleName}: ${problems[0]}`, problems.length > 1 ? `${problems.length - 1} more problem(s)` : undefined);
        }
      }
    }
  }
}

export interface Connected {
  host: Host;
  conn: Connection;
  facts: Facts;
  connectMs: number;
  factsMs: number;
}

/**
 * Connect to hosts in parallel and read their facts; unreachable ones are reported, not thrown.
 * `then` runs for each host as soon as its facts are in (no waiting for the slowest host).
 */
export async function connectHosts(
  pool: ConnectionPool,
  hosts: Host[],
  forks: number,
  reporter: Reporter,
  then?: (c: Connected) => Promise<void>,
): Promise<{ up: Map<string, Connected>; down: Map<string, string> }> {
  const up = new Map<string, Connected>();
  const down = new Map<string, string>();
  await mapLimit(hosts, forks, async (host) => {
    const t0 = Date.now();
    let c: Connected;
    try {
      const conn = await pool.connect(host);
      const t1 = Date.now();
      const { facts } = await gatherFacts(conn);
      c = { host, conn, facts, connectMs: t1 - t0, factsMs: Date.now() - t1 };
      up.set(host.name, c);
      reporter.emit({ kind: 'host-connected', host: host.name, ms: Date.now() - t0 });
    } catch (err) {
      const reason = mask(errorMessage(err));
      down.set(host.name, reason);
      reporter.emit({ kind: 'host-unreachable', host: host.name, reason, hint: err instanceof ProvisionError ? err.hint : undefined });
      return;
    }
    if (then) await then(c);
  });
  return { up, down };
}

/**
 * The run's exit code from every host's counts. Precedence, highest first: a failed task (1), an
 * unreachable host (3), a host `provision apply` refused (5), a change (2), nothing (0). A failure
 * that `ignore_errors` let pass is counted as `ignored` and never raises the code: the run did what
 * the playbook asked.
 */
export function exitCodeFor(counts: Iterable<HostCounts>): number {
  let failed = false;
  let unreachable = false;
  let refused = false;
  let changed = false;
  for (const c of counts) {
    failed ||= c.failed > 0;
    unreachable ||= c.unreachable > 0;
    refused ||= c.refused > 0;
    changed ||= c.changed > 0;
  }
  if (failed) return EXIT.FAILED;
  if (unreachable) return EXIT.UNREACHABLE;
  if (refused) return EXIT.DRIFT_REFUSED;
  if (changed) return EXIT.CHANGED;
  return EXIT.OK;
}

export async function runPlaybook(opts: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const startupMs = Math.round(process.uptime() * 1000);
  const { inventory, playbook, reporter } = opts;
  const names = selectHosts(inventory, opts.limit);
  prepareHosts(inventory, names);
  validateRoleVars(inventory, playbook, names);
  checkSecretsInParams(inventory, playbook, names);
  const forks = opts.forks ?? Math.max(names.length, 1);
  reporter.emit({
    kind: 'run-start',
    inventory: inventory.file,
    playbook: playbook.file,
    hosts: names,
    check: opts.check,
    time: new Date().toISOString(),
  });

  const pool = new ConnectionPool(inventory);
  const results: RunResult['hosts'] = new Map();
  const roundTrips: Record<string, number> = {};
  const phases: NonNullable<Extract<RunEvent, { kind: 'recap' }>['phases']> = { startupMs, hosts: {} };
  try {
    // Per host, as soon as its facts are in: expand every play and read all their state in one
    // round trip; on a converged fleet that one read is all the run needs.
    const runs = new Map<string, HostRun>();
    const expanded = new Map<string, Map<number, HostPlay>>();
    const prepare = async (c: Connected): Promise<void> => {
      const h = c.host.name;
      phases.hosts[h] = { connectMs: c.connectMs, factsMs: c.factsMs };
      const run = new HostRun(c.host, c.conn, c.facts, opts, reporter, () => pool.checkFreshLogin(c.host), (name) => pool.connectByName(name));
      runs.set(h, run);
      results.set(h, run);
      const mine = new Map<number, HostPlay>();
      playbook.plays.forEach((play, pi) => {
        if (!selectHosts(inventory, play.hosts).includes(h)) return;
        try {
          mine.set(pi, expandPlay(play, run.host, run.facts, inventory, playbook.file));
        } catch {
          // reported when the play itself runs
        }
      });
      expanded.set(h, mine);
      try {
        const t = Date.now();
        await run.warm([...mine.values()].flatMap((hp) => [...hp.tasks, ...hp.handlers]));
        phases.hosts[h]!.readMs = Date.now() - t;
      } catch (err) {
        if (!(err instanceof ConnectionError)) throw err;
        run.unreachable = err.message;
        reporter.emit({ kind: 'host-unreachable', host: h, reason: mask(err.message) });
      }
    };
    const { down } = await connectHosts(pool, names.map((n) => inventory.hosts.get(n)!), forks, reporter, prepare);
    for (const [h, reason] of down) results.set(h, { unreachable: reason, counts: { ...emptyCounts(), unreachable: 1 } });

    let stopped = false;
    for (const [pi, play] of playbook.plays.entries()) {
      if (stopped) break;
      const targets = selectHosts(inventory, play.hosts).filter((h) => {
        const r = runs.get(h);
        return r && !r.failed && !r.unreachable && !r.refused;
      });
      if (targets.length === 0) continue;
      reporter.emit({ kind: 'play-start', play: play.name, hosts: targets });
      const serial = opts.serial ?? play.serial ?? targets.length;
      for (let i = 0; i < targets.length; i += serial) {
        const batch = targets.slice(i, i + serial);
        await mapLimit(batch, forks, async (h) => {
          const run = runs.get(h)!;
          try {
            const hp = expanded.get(h)?.get(pi) ?? expandPlay(play, run.host, run.facts, inventory, playbook.file);
            await run.runPlay(hp);
          } catch (err) {
            if (err instanceof ConnectionError) run.unreachable = err.message;
            else {
              run.failed = true;
              run.counts.failed++;
              reporter.emit({ kind: 'task-result', host: h, task: `expand play "${play.name}"`, module: '-', status: 'failed', changes: [], msg: mask(errorMessage(err)), ms: 0 });
            }
          }
          if (run.unreachable) reporter.emit({ kind: 'host-unreachable', host: h, reason: mask(run.unreachable) });
        });
        const failedInBatch = batch.filter((h) => runs.get(h)!.failed || runs.get(h)!.unreachable).length;
        if (play.maxFailPercentage !== undefined && (failedInBatch / batch.length) * 100 > play.maxFailPercentage) {
          reporter.emit({ kind: 'warning', msg: `play "${play.name}": ${failedInBatch} of ${batch.length} hosts failed, over max_fail_percentage ${play.maxFailPercentage}; stopping the run` });
          stopped = true;
          break;
        }
      }
    }
    for (const run of runs.values()) {
      if (run.unreachable) run.counts.unreachable = 1;
      roundTrips[run.host.name] = run.conn.roundTrips;
    }
  } finally {
    await pool.closeAll();
  }
  const counts = new Map([...results].map(([h, r]) => [h, r.counts]));
  const exitCode = exitCodeFor(counts.values());
  const wallMs = Date.now() - t0;
  reporter.emit({ kind: 'recap', hosts: Object.fromEntries(counts), wallMs, check: opts.check, exitCode, roundTrips, phases });
  return { exitCode, hosts: results, wallMs };
}
