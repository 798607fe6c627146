import type { ChangeGuard, GuardedChange, StateRead } from '../executor/index.js';
import { changeLines, keyed, planned, type PlanFile, type PlannedTask } from './plan.js';
import { compareText } from '../util/compare-text.js';

const lines = (t: PlannedTask | GuardedChange): string[] => changeLines({ tasks: [t], fingerprints: {} });

/**
 * What a saved plan allows the real run of `provision apply` to do. The run asks it itself (not a
 * check run before it), so what it acts on is what was compared: first the state it has just read,
 * before any task; then each task's computed changes, before that task's commands run. A task whose
 * changes are not the plan's next ones for the host stops the host there.
 */
export class PlanGuard implements ChangeGuard {
  /** Per host: index of the first planned task not yet matched. */
  private next = new Map<string, number>();
  /** Per host: planned tasks the run passed without them computing any change. */
  private passed = new Map<string, PlannedTask[]>();

  constructor(private readonly plan: PlanFile) {}

  checkState(host: string, state: StateRead): string[] {
    const plan = this.plan.hosts[host];
    if (!plan) return ['the host is not in the plan'];
    const out: string[] = [];
    // The plan's fingerprints are keyed (see planKey): key what is read now the same way.
    if (plan.fingerprints.facts !== keyed(state.factsFingerprint)) out.push('changed since the plan: facts');
    // Only what was read before any task: later reads see this run's own changes.
    for (const [key, now] of [...state.observed].sort(([a], [b]) => compareText(a, b))) {
      const then = plan.fingerprints[key];
      if (then === undefined) out.push(`state read now but not in the plan: ${key}`);
      else if (then !== keyed(now)) out.push(`changed since the plan: ${key}`);
    }
    return out;
  }

  checkChange(host: string, computed: GuardedChange): string | undefined {
    // Compared in the plan's form (masked), the form the plan was written in.
    const change = planned(computed);
    const tasks = this.plan.hosts[host]?.tasks ?? [];
    const from = this.next.get(host) ?? 0;
    const same = (t: PlannedTask) => t.task === change.task && (t.role ?? '') === (change.role ?? '') && t.handler === change.handler;
    const at = tasks.findIndex((t, i) => i >= from && same(t));
    const wanted = lines(change);
    if (at < 0) return `the run would make a change the plan does not have: ${wanted.join('; ')}`;
    const plannedTask = tasks[at]!;
    // The plan could not show what this task does: doing it would be doing what nobody saw.
    if (plannedTask.unknown) return `the plan could not know what this task does (${plannedTask.unknown}): it computed ${wanted.join('; ')}`;
    const plannedTaskLines = lines(plannedTask);
    if (wanted.join('\n') !== plannedTaskLines.join('\n')) {
      return `the run computed ${wanted.join('; ')}, the plan has ${plannedTaskLines.join('; ')}`;
    }
    // Same change, other content (a template or a var edited since the plan): the diff shown was not this one.
    const content = change.changes.findIndex((c, i) => c.after !== undefined && plannedTask.changes[i]?.after !== undefined && c.after !== plannedTask.changes[i]!.after);
    if (content >= 0) return `the run would write other content than the plan shows: ${wanted[content]}`;
    this.passed.set(host, [...(this.passed.get(host) ?? []), ...tasks.slice(from, at)]);
    this.next.set(host, at + 1);
    return undefined;
  }

  /** Planned changes the run did not make on a host it finished (it found them already done). */
  notMade(host: string): string[] {
    const rest = (this.plan.hosts[host]?.tasks ?? []).slice(this.next.get(host) ?? 0);
    return [...(this.passed.get(host) ?? []), ...rest].flatMap(lines);
  }
}
