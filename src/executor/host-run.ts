import { createHash } from 'node:crypto';
import { factsFingerprint, ProbeTimeoutError, type Facts, type ProbeResult } from '../facts/index.js';
import { PENDING_HANDLERS_FILE, STATE_DIR } from '../host-paths.js';
import type { Host } from '../inventory/index.js';
import { emptyPredictedState, type Change, type Command, type ModuleContext, type PredictedState, type Probe, type Task } from '../modules/index.js';
import { CommandTimeoutError, DEFAULT_COMMAND_TIMEOUT_MS } from '../transport/index.js';
import { ConnectionError, errorMessage, ModuleError, ValidationError } from '../util/errors.js';
import { bindTask, isBound, type BoundTask, type HostTask } from './bind.js';
import { emptyCounts, maskedSink, NO_EVENTS, type EventSink, type HostCounts, type TaskStatus } from './events.js';
import type { HostPlay, PlayExpansion } from './expand.js';
import type { HostSession } from './session.js';

/** What one task did (or would do) on a host. Plain data, NOT masked: it goes out through an output that masks. */
export interface TaskOutcome {
  task: string;
  role?: string;
  module: string;
  handler: boolean;
  status: TaskStatus;
  changes: Change[];
  msg?: string;
}

/** One host's run, as data. */
export interface HostOutcome {
  counts: HostCounts;
  outcomes: TaskOutcome[];
  /** Fingerprint of every state read, as first seen in this run (what a plan relies on), by probe key. */
  observed: Record<string, string>;
  /** Fingerprint of the facts that describe the host's state (facts.ts factsFingerprint); absent when never connected. */
  factsFingerprint?: string;
  /** A task failed (not ignored): the host stopped there. */
  failed: boolean;
  /** Why the host could not be reached, or was lost. */
  unreachable?: string;
  /** Why `provision apply` stopped this host before it did something the plan did not show. */
  refused?: string;
}

export interface RunFlags {
  check: boolean;
  tags?: string[];
  skipTags?: string[];
  /** --start-at-task: every task before the first one of this name is left out (as by tags). */
  startAtTask?: string;
  /** `provision apply`: what the saved plan allows this run to do. */
  guard?: ChangeGuard;
}

/** A task's computed changes, as the guard is asked about them (raw: the guard puts them in its plan's form). */
export interface GuardedChange {
  task: string;
  role?: string;
  module: string;
  handler: boolean;
  changes: Change[];
}

/** The state a run has read before its first task: what a plan's fingerprints are compared with. */
export interface StateRead {
  factsFingerprint: string;
  observed: ReadonlyMap<string, string>;
}

/**
 * Asked by the real run itself, so nothing is done that the plan did not show: first with the
 * state the run has just read (before any task), then with each task's computed changes, before
 * its commands run. A reason means "refused": the host stops there, untouched by that task.
 */
export interface ChangeGuard {
  /** Why the state this run read is not the state the plan was made from (empty: it is). */
  checkState(host: string, state: StateRead): string[];
  /** Why these changes are not the plan's next ones for this host (undefined: they are). */
  checkChange(host: string, change: GuardedChange): string | undefined;
}

/** How much of a command's output a `command` event carries (-vv). */
const COMMAND_OUTPUT_LINES = 20;

const fingerprint = (r: ProbeResult) => createHash('sha256').update(`${r.code}\n${r.stdout}`).digest('hex').slice(0, 16);

/**
 * The state read for one host: raw results by probe key, their parsed values (once per read), the
 * probes that hung, and which task lists it already holds every probe of. Reading is linear in a
 * play's length: a list is looked at once per read, not once per task.
 */
class StateCache {
  private readonly raw = new Map<string, ProbeResult>();
  private readonly parsed = new Map<string, { from: ProbeResult | undefined; value: unknown }>();
  /** Probes that ran out of probe_timeout: not read again; the task that needs one fails with it. */
  readonly hung = new Map<string, ProbeTimeoutError>();
  /** Task lists every probe of which (from wherever the run is in them) is read or hung. */
  private readonly covered = new Set<readonly HostTask[]>();
  /** Fingerprint of every state read as first seen in this run. */
  readonly observed = new Map<string, string>();

  constructor(private readonly session: HostSession) {}

  read<T>(probe: Probe<T>): T {
    const from = this.raw.get(probe.key);
    const memo = this.parsed.get(probe.key);
    if (memo && memo.from === from) return memo.value as T;
    const value = probe.parse(from);
    this.parsed.set(probe.key, { from, value });
    return value;
  }

  /**
   * Read, in one round trip, every probe of these lists (from index `from` on) not read yet; the
   * lists are then covered until the host changes. A covered list costs nothing to ask about again.
   */
  async fill(lists: ReadonlyArray<readonly HostTask[]>, from = 0): Promise<void> {
    const todo = lists.filter((l) => !this.covered.has(l));
    if (todo.length === 0) return;
    const wanted = todo.flatMap((l) => l.slice(from)).flatMap((t) => (isBound(t) ? t.probes : []));
    const missing = wanted.filter((p) => !this.raw.has(p.key) && !this.hung.has(p.key));
    if (missing.length) await this.fetch(missing);
    if (wanted.every((p) => this.raw.has(p.key) || this.hung.has(p.key))) todo.forEach((l) => this.covered.add(l));
  }

  private async fetch(probes: Probe<unknown>[]): Promise<void> {
    let results: Map<string, ProbeResult>;
    try {
      results = await this.session.read(probes);
    } catch (err) {
      if (!(err instanceof ProbeTimeoutError)) throw err;
      // What finished stands; what hung fails the task that needs it (in whichever play), not the task that happened to read it.
      for (const k of err.hung) this.hung.set(k, err);
      results = err.done;
    }
    for (const [k, v] of results) {
      this.raw.set(k, v);
      if (!this.observed.has(k)) this.observed.set(k, fingerprint(v));
    }
  }

  /** The host changed: every later read must see it as it is now. */
  invalidate(): void {
    this.raw.clear();
    this.parsed.clear();
    this.covered.clear();
  }
}

/**
 * One host's side of a run: its session, facts, the predicted state of earlier tasks, notified
 * handlers, and the state cache that makes a no-change run one round trip per play. Private to the
 * executor: the outside gets its outcome() as data.
 */
export class HostRun {
  private readonly counts: HostCounts = emptyCounts();
  private readonly outcomes: TaskOutcome[] = [];
  private readonly predicted: PredictedState = emptyPredictedState();
  private readonly cache: StateCache;
  private readonly notified = new Set<string>();
  failed = false;
  unreachable: string | undefined;
  refused: string | undefined;

  constructor(
    readonly host: Host,
    readonly session: HostSession,
    readonly facts: Facts,
    private readonly flags: RunFlags,
    private readonly sink: EventSink,
  ) {
    this.cache = new StateCache(session);
    // Handlers notified by an earlier run that failed before running them are still owed.
    for (const h of facts.pendingHandlers) this.notified.add(h);
  }

  /** Stopped: failed, unreachable or refused; no later play runs on it. */
  get stopped(): boolean {
    return this.failed || this.unreachable !== undefined || this.refused !== undefined;
  }

  /** --start-at-task: whether that task has been reached on this host. */
  private startReached = false;

  private selected(t: HostTask): boolean {
    if (this.flags.startAtTask !== undefined && !this.startReached) {
      if (t.meta.name !== this.flags.startAtTask) return false;
      this.startReached = true;
    }
    const tags = new Set([...t.meta.tags, ...(t.meta.role ? [t.meta.role] : [])]);
    if (this.flags.skipTags?.some((tag) => tags.has(tag))) return false;
    if (this.flags.tags?.length && !tags.has('always')) return this.flags.tags.some((tag) => tags.has(tag));
    return true;
  }

  /**
   * Read, in one round trip, the state every play of the run will need on this host; then, under
   * `provision apply`, ask the guard whether it is the state the plan was made from. A host lost
   * here is unreachable (reported), not an error of the run.
   */
  async prepare(plays: HostPlay[]): Promise<void> {
    try {
      await this.cache.fill(plays.flatMap((p) => [p.tasks, p.handlers]));
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      this.lost(err.message);
      return;
    }
    const differences = this.flags.guard?.checkState(this.host.name, { factsFingerprint: factsFingerprint(this.facts), observed: this.cache.observed }) ?? [];
    if (differences.length === 0) return;
    // Before any task: nothing of this host is touched.
    this.refused = `the host changed since the plan: ${differences.join('; ')}`;
    this.counts.refused++;
    this.sink.emit({ kind: 'task-result', host: this.host.name, task: 'state read by this run', module: '-', status: 'refused', changes: [], msg: this.refused, ms: 0 });
  }

  private lost(reason: string): void {
    this.unreachable = reason;
    this.sink.emit({ kind: 'host-unreachable', host: this.host.name, reason });
  }

  private async runCommand(c: Command, task: BoundTask, handler: boolean): Promise<void> {
    if (c.kind === 'call') {
      const started = Date.now();
      const session = this.session;
      await c.run({ hostName: this.host.name, spawn: session.spawn ? (command, opts) => session.spawn!(command, opts) : undefined });
      const { meta } = task;
      this.sink.emit({ kind: 'command', host: this.host.name, task: meta.name, role: meta.role, handler, command: c.describe, code: 0, output: '', ms: Date.now() - started });
      return;
    }
    // The task's own bound, else the inventory's, else the module's, else the transport's default.
    const timeoutMs = c.timeoutMs ?? this.host.connection.commandTimeoutMs ?? task.def.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const started = Date.now();
    const res = await this.session.exec(c.cmd, { stdin: c.stdin, timeoutMs }).catch((err: unknown) => {
      throw err instanceof CommandTimeoutError ? err.as(c.describe ?? `command \`${c.cmd.split('\n')[0]}\``, c.timeoutMs ? "the task's timeout" : 'command_timeout') : err;
    });
    const { meta } = task;
    this.sink.emit({
      kind: 'command',
      host: this.host.name,
      task: meta.name,
      role: meta.role,
      handler,
      command: c.describe ?? c.cmd,
      code: res.code,
      output: [res.stdout.trim(), res.stderr.trim()].filter(Boolean).join('\n').split('\n').slice(-COMMAND_OUTPUT_LINES).join('\n'),
      ms: Date.now() - started,
    });
    if (!(c.okCodes ?? [0]).includes(res.code)) {
      const output = (res.stderr.trim() || res.stdout.trim()).split('\n').slice(-15).join('\n');
      if (c.validationExit !== undefined && res.code === c.validationExit) {
        throw new ValidationError(`validation failed, the live file is untouched: ${output}`, { ...res, exitCode: res.code });
      }
      throw new ModuleError(`${c.describe ?? c.cmd.split('\n')[0]} exited ${res.code}: ${output}`, {
        stdout: res.stdout,
        stderr: res.stderr,
        exitCode: res.code,
        command: c.describe ?? c.cmd,
      });
    }
  }

  private async recordPendingHandlers(names: string[]): Promise<void> {
    if (this.flags.check || names.length === 0) return;
    const lines = names.map((n) => n.replace(/\n/g, ' ')).join('\n') + '\n';
    await this.session.exec(`mkdir -p ${STATE_DIR} && cat >> ${PENDING_HANDLERS_FILE}`, { stdin: lines });
  }

  private async clearPendingHandlers(ran: string[]): Promise<void> {
    if (this.flags.check || ran.length === 0) return;
    const keep = `grep -vxF -f /dev/stdin ${PENDING_HANDLERS_FILE} > ${PENDING_HANDLERS_FILE}.new || true`;
    await this.session.exec(
      `[ -f ${PENDING_HANDLERS_FILE} ] || exit 0; ${keep}; if [ -s ${PENDING_HANDLERS_FILE}.new ]; then mv ${PENDING_HANDLERS_FILE}.new ${PENDING_HANDLERS_FILE}; else rm -f ${PENDING_HANDLERS_FILE} ${PENDING_HANDLERS_FILE}.new; fi`,
      { stdin: ran.join('\n') + '\n' },
    );
  }

  private context(): ModuleContext {
    return {
      host: this.host,
      facts: this.facts,
      check: this.flags.check,
      predicted: this.predicted,
      read: (probe) => this.cache.read(probe),
      run: async (cmd, opts) => {
        const r = await this.session.exec(cmd, { stdin: opts?.stdin, timeoutMs: this.session.probeTimeoutMs }).catch((err: unknown) => {
          throw err instanceof CommandTimeoutError ? err.as(`reading the host's state: \`${cmd.split('\n')[0]}\``, 'probe_timeout') : err;
        });
        return { stdout: r.stdout, code: r.code };
      },
      reconnect: this.session.freshLogin ? () => this.session.freshLogin!() : undefined,
      peer: this.session.peer ? (name) => this.session.peer!(name) : undefined,
    };
  }

  /**
   * Run list[at]: read state, plan, apply when needed, report. The rest of the list is read in the
   * same round trip when its state is not read yet. Returns false when the host must stop.
   */
  private async runTask(list: readonly HostTask[], at: number, handler: boolean): Promise<boolean> {
    const task = list[at]!;
    const { meta } = task;
    if (!this.selected(task) && !handler) return true;
    const started = Date.now();
    const report = (status: TaskStatus, changes: Change[], msg?: string, note?: string) => {
      this.counts[status]++;
      this.outcomes.push({ task: meta.name, role: meta.role, module: meta.module, handler, status, changes, msg });
      this.sink.emit({ kind: 'task-result', host: this.host.name, task: meta.name, role: meta.role, module: meta.module, handler, status, changes, msg, note, ms: Date.now() - started });
    };
    if (!meta.when) {
      report('skipped', []);
      return true;
    }
    this.sink.emit({ kind: 'task-start', host: this.host.name, task: meta.name, role: meta.role, handler });
    try {
      if (!isBound(task)) throw new ModuleError(task.error!);
      await this.cache.fill([list], at);
      const hung = task.probes.find((p) => this.cache.hung.has(p.key));
      if (hung) throw this.cache.hung.get(hung.key);
      const ctx = this.context();
      const plan = await task.def.plan(task.params, ctx);
      if (plan.changes.length === 0) {
        report('ok', [], undefined, plan.note);
        return true;
      }
      if (!this.flags.check && this.flags.guard) {
        const why = this.flags.guard.checkChange(this.host.name, { task: meta.name, role: meta.role, module: meta.module, handler, changes: plan.changes });
        if (why) {
          this.refused = why;
          report('refused', [], why);
          return false;
        }
      }
      const toNotify = meta.notify.filter((h) => !this.notified.has(h));
      if (!this.flags.check) {
        // Record the notification on the host first: if this run dies before the handler runs, the next run owes it.
        await this.recordPendingHandlers(toNotify);
        for (const c of plan.commands) await this.runCommand(c, task, handler);
        // Every later read must see the host as it is now.
        this.cache.invalidate();
        if (plan.verify) await plan.verify(ctx);
      }
      plan.predict?.(this.predicted);
      this.predicted.anyChange = true;
      for (const h of meta.notify) this.notified.add(h);
      report('changed', plan.changes, undefined, plan.note);
      return true;
    } catch (err) {
      if (err instanceof ConnectionError) {
        // Unreachable is a result of its own, not a task failure: the recap counts it once and the
        // exit code says "unreachable". The reason names the task the connection was lost in.
        this.unreachable = `${err.message} (during task "${meta.name}")`;
        return false;
      }
      // An ignored failure is still reported (status "ignored", counted apart): it does not fail the host or the run.
      report(meta.ignoreErrors ? 'ignored' : 'failed', [], errorMessage(err));
      if (meta.ignoreErrors) return true;
      this.failed = true;
      return false;
    }
  }

  /** Run a play on this host: its tasks in order, then the handlers that were notified, once each. */
  private async runTasks(play: HostPlay): Promise<void> {
    if (this.refused) return;
    for (let i = 0; i < play.tasks.length; i++) {
      if (!(await this.runTask(play.tasks, i, false))) return; // notified handlers stay recorded on the host for the next run
    }
    const due = play.handlers.filter((h) => this.notified.has(h.meta.name));
    const ran: string[] = [];
    for (let i = 0; i < due.length; i++) {
      if (!(await this.runTask(due, i, true))) break;
      ran.push(due[i]!.meta.name);
      this.notified.delete(due[i]!.meta.name);
    }
    try {
      await this.clearPendingHandlers(ran);
    } catch (err) {
      if (err instanceof ConnectionError) this.unreachable = err.message;
      else throw err;
    }
  }

  /**
   * Run one play's expansion on this host. A play that could not be expanded for it, or that
   * fails outside any task, fails the host (reported as the task `expand play "NAME"`).
   */
  async runPlay(name: string, expansion: PlayExpansion): Promise<void> {
    try {
      if (!expansion.ok) throw expansion.error;
      await this.runTasks(expansion.play);
    } catch (err) {
      if (err instanceof ConnectionError) this.unreachable = err.message;
      else {
        this.failed = true;
        this.counts.failed++;
        this.sink.emit({ kind: 'task-result', host: this.host.name, task: `expand play "${name}"`, module: '-', status: 'failed', changes: [], msg: errorMessage(err), ms: 0 });
      }
    }
    if (this.unreachable) this.sink.emit({ kind: 'host-unreachable', host: this.host.name, reason: this.unreachable });
  }

  outcome(): HostOutcome {
    return {
      counts: { ...this.counts, unreachable: this.unreachable ? 1 : this.counts.unreachable },
      outcomes: [...this.outcomes],
      observed: Object.fromEntries(this.cache.observed),
      factsFingerprint: factsFingerprint(this.facts),
      failed: this.failed,
      unreachable: this.unreachable,
      refused: this.refused,
    };
  }
}

/** A host that was never reached: its outcome. */
export function unreachableOutcome(reason: string): HostOutcome {
  return { counts: { ...emptyCounts(), unreachable: 1 }, outcomes: [], observed: {}, failed: false, unreachable: reason };
}

export interface HostRunOptions extends RunFlags {
  host: Host;
  session: HostSession;
  facts: Facts;
  /** Plays of tasks, as roles build them (TypeScript Task objects), bound here for this host. */
  plays: Array<{ name: string; tasks: Task[]; handlers?: Task[] }>;
  sink?: EventSink;
}

/**
 * Run plays of tasks on one host whose session and facts the caller has: bind every task, read
 * all their state in one round trip, run the plays in order. The executor's unit, as data in and out.
 */
export async function runHost(o: HostRunOptions): Promise<HostOutcome> {
  const target = { host: o.host, facts: o.facts };
  const run = new HostRun(o.host, o.session, o.facts, o, maskedSink(o.sink ?? NO_EVENTS));
  const plays = o.plays.map((p) => ({ name: p.name, tasks: p.tasks.map((t) => bindTask(t, target)), handlers: (p.handlers ?? []).map((t) => bindTask(t, target)) }));
  await run.prepare(plays);
  for (const play of plays) {
    if (run.stopped) break;
    await run.runPlay(play.name, { ok: true, play });
  }
  return run.outcome();
}
