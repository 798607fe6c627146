import { runPlaybook, type Connector, type EventSink, type HostOutcome } from '../executor/index.js';
import { PlanGuard } from '../plan/guard.js';
import { assertPlanKey, hostDrift, hostPlanOf, readPlan, type PlanFile } from '../plan/plan.js';
import { InputError, PlanRefused } from '../util/errors.js';
import { EXIT, exitCodeOf, withExitCode } from './exit-codes.js';
import { loadInputs } from './load.js';
import { printErr, printOut } from './output.js';

export interface ApplyOptions {
  allOrNothing?: boolean;
  maxAge: number; // seconds
  forks?: number;
  reporter: EventSink;
  /** How hosts are reached (default: SSH); unit tests give recorded hosts. */
  connector?: Connector;
}

export function parseMaxAge(v: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new InputError(`--max-age: "${v}" is not a duration like 900, 15m, 2h or 1d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

/** Which hosts a saved plan may be applied to, from every selected host's check run now. */
export interface ApplyDecision {
  /** Per refused host: what differs from the plan. */
  refused: Record<string, string[]>;
  /** Hosts that match the plan and have something to do. */
  toApply: string[];
}

/** Compare every host's check run now with the plan: drifted, gone or new hosts are refused. */
export function decideApply(plan: PlanFile, checks: Readonly<Record<string, HostOutcome>>): ApplyDecision {
  const refused: Record<string, string[]> = {};
  const toApply: string[] = [];
  for (const [host, planned] of Object.entries(plan.hosts)) {
    const check = checks[host];
    if (!check) {
      refused[host] = ['no longer selected by the inventory and limit'];
      continue;
    }
    const drift = hostDrift(planned, hostPlanOf(check));
    if (drift.length) refused[host] = drift;
    else if (planned.tasks.length) toApply.push(host);
  }
  for (const host of Object.keys(checks)) if (!plan.hosts[host]) refused[host] = ['not in the plan'];
  return { refused, toApply };
}

/**
 * `provision apply PLAN`: apply exactly a saved plan. One connection per host: a silent check run
 * first compares every host with the plan, and a host whose state or computed changes differ is
 * refused with what differs (--all-or-nothing: every host); the rest get the real run on the same
 * connection, which checks again itself (PlanGuard): the state it reads before any task, and each
 * task's changes before its commands run. What that run would do beyond the plan is refused (exit 5).
 */
export async function applyCommand(file: string, o: ApplyOptions): Promise<number> {
  const plan = readPlan(file);
  assertPlanKey(plan, file);
  const age = (Date.now() - Date.parse(plan.created)) / 1000;
  if (!(age <= o.maxAge)) {
    throw new PlanRefused(`plan ${file} is ${Math.round(age)} s old, older than --max-age ${o.maxAge} s`, 'make a new plan');
  }
  const { inventory, playbook } = loadInputs({ inventory: plan.inventory, playbook: plan.playbook });
  const guard = new PlanGuard(plan);
  let decision: ApplyDecision | undefined;
  /** Decided once, with every host's check in: refusals are said before the real run shows anything. */
  const decide = (checks: Readonly<Record<string, HostOutcome>>): ApplyDecision => {
    if (decision) return decision;
    decision = decideApply(plan, checks);
    for (const [host, why] of Object.entries(decision.refused)) {
      printErr(`provision: ${host}: refused, the host drifted since the plan:\n${why.map((w) => `  - ${w}`).join('\n')}`);
    }
    if (Object.keys(decision.refused).length && o.allOrNothing) printErr('provision: --all-or-nothing: nothing applied');
    return decision;
  };
  const reporter = withExitCode(o.reporter);
  let res;
  try {
    res = await runPlaybook({
      inventory,
      playbook,
      limit: plan.limit,
      tags: plan.tags,
      skipTags: plan.skipTags,
      forks: o.forks,
      check: false,
      guard,
      reporter,
      connector: o.connector,
      gate: (host, _check, all) => {
        const d = decide(all);
        if (o.allOrNothing && Object.keys(d.refused).length) return false;
        return d.toApply.includes(host);
      },
    });
  } finally {
    await reporter.close?.();
  }
  const { refused, toApply } = decide(res.checks ?? {});
  const anyRefused = Object.keys(refused).length > 0;
  if (anyRefused && o.allOrNothing) return EXIT.DRIFT_REFUSED;
  if (toApply.length === 0) {
    printOut(anyRefused ? 'nothing applied' : 'nothing to apply: every host already matches');
    return anyRefused ? EXIT.DRIFT_REFUSED : EXIT.OK;
  }
  for (const host of toApply) {
    const r = res.hosts[host];
    if (!r || r.failed || r.unreachable) continue;
    if (r.refused) {
      printErr(`provision: ${host}: refused during the run, stopped before doing what the plan does not show:\n  - ${r.refused}`);
      continue;
    }
    // Nothing beyond the plan was done; a planned change the run found already made is only said.
    const notMade = guard.notMade(host);
    if (notMade.length) printErr(`provision: note: ${host}: planned changes the run found already made:\n${notMade.map((l) => `  - ${l}`).join('\n')}`);
  }
  const code = exitCodeOf(res);
  if (code === EXIT.FAILED || code === EXIT.UNREACHABLE) return code;
  return anyRefused ? EXIT.DRIFT_REFUSED : code;
}
