import { createHash } from 'node:crypto';
import type { Facts, ProbeResult } from '../facts/index.js';
import { PENDING_HANDLERS_FILE, ProbeTimeoutError, runProbes, STATE_DIR } from '../facts/index.js';
import type { Host } from '../inventory/index.js';
import { emptyPredictedState, getModule, type Change, type Command, type ModuleContext, type PredictedState, type Task } from '../modules/index.js';
import { VALIDATION_FAILED_EXIT } from '../modules/lib/write-file.js';
import type { HostCounts, Reporter, TaskStatus } from '../report/events.js';
import { emptyCounts } from '../report/events.js';
import { CommandTimeoutError, DEFAULT_COMMAND_TIMEOUT_MS, type Connection } from '../transport/index.js';
import { ConnectionError, errorMessage, ModuleError, ValidationError } from '../util/errors.js';
import { quote } from '../util/quote.js';
import { mask } from '../util/secrets.js';

export interface TaskOutcome {
  task: Task;
  status: TaskStatus;
  changes: Change[];
  handler: boolean;
  msg?: string;
}

export interface RunFlags {
  check: boolean;
  tags?: string[];
  skipTags?: string[];
  /** `provision apply`: what the saved plan allows this run to do. */
  guard?: ChangeGuard;
}

/** A task's changes as a plan records them (masked). */
export interface GuardedChange {
  task: string;
  role?: string;
  module: string;
  handler: boolean;
  changes: Change[];
}

/**
 * Asked by the real run itself, so nothing is done that the plan did not show: first with the
 * state the run has just read (before any task), then with each task's computed changes, before
 * its commands run. A reason means "refused": the host stops there, untouched by that task.
 */
export interface ChangeGuard {
  /** Why the state this run read is not the state the plan was made from (empty: it is). */
  checkState(host: string, facts: Facts, observed: ReadonlyMap<string, string>): string[];
  /** Why these changes are not the plan's next ones for this host (undefined: they are). */
  checkChange(host: string, change: GuardedChange): string | undefined;
}

/** A change as it may be shown: every text field masked. */
function maskChange(c: Change): Change {
  return { ...c, target: mask(c.target), action: mask(c.action), before: c.before === undefined ? undefined : mask(c.before), after: c.after === undefined ? undefined : mask(c.after) };
}

/** A play's tasks for one host, already expanded from its roles. */
export interface HostPlay {
  name: string;
  tasks: Task[];
  handlers: Task[];
}

/**
 * One host's side of a run: its connection, facts, the predicted state of earlier tasks,
 * notified handlers, and the probe cache that makes a no-change run one round trip per play.
 */
export class HostRun {
  readonly counts: HostCounts = emptyCounts();
  readonly outcomes: TaskOutcome[] = [];
  readonly predicted: PredictedState = emptyPredictedState();
  failed = false;
  unreachable: string | undefined;
  /** Why a guard (provision apply) stopped this host before it did something the plan did not show. */
  refused: string | undefined;
  private probeCache = new Map<string, ProbeResult>();
  /** Probes that ran out of probe_timeout: not read again; the task that needs one fails with it. */
  private hungProbes = new Map<string, ProbeTimeoutError>();
  /** Fingerprint of every state read as first seen in this run (what a plan relied on). */
  readonly observed = new Map<string, string>();
  private notified = new Set<string>();

  constructor(
    readonly host: Host,
    readonly conn: Connection,
    readonly facts: Facts,
    private readonly flags: RunFlags,
    private readonly reporter: Reporter,
    /** Opens a fresh connection to this host and closes it (lockout checks). */
    private readonly freshLogin?: () => Promise<void>,
    /** Another inventory host's connection from the run's pool (a replica reading its primary). */
    private readonly peer?: (hostName: string) => Promise<Connection>,
  ) {
    // Handlers notified by an earlier run that failed before running them are still owed.
    for (const h of facts.pendingHandlers) this.notified.add(h);
  }

  private selected(task: Task): boolean {
    const tags = new Set([...(task.tags ?? []), ...(task.role ? [task.role] : [])]);
    if (this.flags.skipTags?.some((t) => tags.has(t))) return false;
    if (this.flags.tags?.length && !tags.has('always')) return this.flags.tags.some((t) => tags.has(t));
    return true;
  }

  /** Read the probes of every remaining task not yet cached, in one round trip. */
  /** Read, in one round trip, the state every given task will need (all plays of the run at once). */
  async warm(tasks: Task[]): Promise<void> {
    await this.prefetch(tasks);
    const differences = this.flags.guard?.checkState(this.host.name, this.facts, this.observed) ?? [];
    if (differences.length === 0) return;
    // Before any task: nothing of this host is touched.
    this.refused = `the host changed since the plan: ${differences.join('; ')}`;
    this.counts.refused++;
    this.reporter.emit({ kind: 'task-result', host: this.host.name, task: 'state read by this run', module: '-', status: 'refused', changes: [], msg: mask(this.refused), ms: 0 });
  }

  private async prefetch(tasks: Task[]): Promise<void> {
    const wanted = tasks.flatMap((t) => {
      const def = getModule(t.module);
      if (!def || t.when === false) return [];
      try {
        return def.probes(def.schema.parse(t.params), this.host, this.facts);
      } catch {
        return []; // parameter errors surface when the task itself runs
      }
    });
    const missing = wanted.filter((p) => !this.probeCache.has(p.key) && !this.hungProbes.has(p.key));
    if (missing.length === 0) return;
    let results: Map<string, ProbeResult>;
    try {
      results = await runProbes(this.conn, missing, true);
    } catch (err) {
      if (!(err instanceof ProbeTimeoutError)) throw err;
      // What finished stands; what hung fails the task that needs it (in whichever play), not the task that happened to read it.
      for (const k of err.hung) this.hungProbes.set(k, err);
      results = err.done;
    }
    for (const [k, v] of results) {
      this.probeCache.set(k, v);
      if (!this.observed.has(k)) this.observed.set(k, createHash('sha256').update(`${v.code}\n${v.stdout}`).digest('hex').slice(0, 16));
    }
  }

  private async runCommand(c: Command, moduleBoundMs: number | undefined): Promise<void> {
    if (c.kind === 'call') {
      await c.run(this.conn);
      return;
    }
    // The task's own bound, else the inventory's, else the module's, else the transport's default.
    const timeoutMs = c.timeoutMs ?? this.host.connection.commandTimeoutMs ?? moduleBoundMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const res = await this.conn.exec(c.cmd, { stdin: c.stdin, timeoutMs }).catch((err: unknown) => {
      throw err instanceof CommandTimeoutError ? err.as(c.describe ?? `command \`${c.cmd.split('\n')[0]}\``, c.timeoutMs ? "the task's timeout" : 'command_timeout') : err;
    });
    if (!(c.okCodes ?? [0]).includes(res.code)) {
      const output = (res.stderr.trim() || res.stdout.trim()).split('\n').slice(-15).join('\n');
      if (res.code === VALIDATION_FAILED_EXIT) {
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
    await this.conn.exec(`mkdir -p ${STATE_DIR} && cat >> ${PENDING_HANDLERS_FILE}`, { stdin: lines });
  }

  private async clearPendingHandlers(ran: string[]): Promise<void> {
    if (this.flags.check || ran.length === 0) return;
    const keep = `grep -vxF -f /dev/stdin ${PENDING_HANDLERS_FILE} > ${PENDING_HANDLERS_FILE}.new || true`;
    await this.conn.exec(
      `[ -f ${PENDING_HANDLERS_FILE} ] || exit 0; ${keep}; if [ -s ${PENDING_HANDLERS_FILE}.new ]; then mv ${PENDING_HANDLERS_FILE}.new ${PENDING_HANDLERS_FILE}; else rm -f ${PENDING_HANDLERS_FILE} ${PENDING_HANDLERS_FILE}.new; fi`,
      { stdin: ran.join('\n') + '\n' },
    );
  }

  /** Run one task: read state, plan, apply when needed, report. Returns false when the host must stop. */
  async runTask(task: Task, remaining: Task[], handler = false): Promise<boolean> {
    if (!this.selected(task) && !handler) return true;
    const started = Date.now();
    const report = (status: TaskStatus, changes: Change[], msg?: string, note?: string) => {
      this.counts[status]++;
      this.outcomes.push({ task, status, changes, handler, msg });
      this.reporter.emit({
        kind: 'task-result',
        host: this.host.name,
        task: task.name,
        role: task.role,
        module: task.module,
        handler,
        status,
        changes: changes.map(maskChange),
        msg: msg === undefined ? undefined : mask(msg),
        note,
        ms: Date.now() - started,
      });
    };
    if (task.when === false) {
      report('skipped', []);
      return true;
    }
    this.reporter.emit({ kind: 'task-start', host: this.host.name, task: task.name, role: task.role, handler });
    const def = getModule(task.module);
    try {
      if (!def) throw new ModuleError(`unknown module "${task.module}"`);
      const parsed = def.schema.safeParse(task.params);
      if (!parsed.success) {
        const i = parsed.error.issues[0]!;
        throw new ModuleError(`${task.module}: ${i.path.join('.') || 'params'}: ${i.message}`);
      }
      await this.prefetch([task, ...remaining]);
      const hung = def.probes(parsed.data, this.host, this.facts).find((p) => this.hungProbes.has(p.key));
      if (hung) throw this.hungProbes.get(hung.key);
      const ctx: ModuleContext = {
        host: this.host,
        facts: this.facts,
        check: this.flags.check,
        predicted: this.predicted,
        results: this.probeCache,
        run: async (cmd, opts) => {
          const r = await this.conn.exec(cmd, { stdin: opts?.stdin, timeoutMs: this.conn.probeTimeoutMs }).catch((err: unknown) => {
            throw err instanceof CommandTimeoutError ? err.as(`reading the host's state: \`${cmd.split('\n')[0]}\``, 'probe_timeout') : err;
          });
          return { stdout: r.stdout, code: r.code };
        },
        reconnect: this.freshLogin,
        peer: this.peer,
      };
      const plan = await def.plan(parsed.data, ctx);
      if (plan.changes.length === 0) {
        report('ok', [], undefined, plan.note);
        return true;
      }
      if (!this.flags.check && this.flags.guard) {
        const why = this.flags.guard.checkChange(this.host.name, { task: task.name, role: task.role, module: task.module, handler, changes: plan.changes.map(maskChange) });
        if (why) {
          this.refused = why;
          report('refused', [], why);
          return false;
        }
      }
      const toNotify = (task.notify ?? []).filter((h) => !this.notified.has(h));
      if (!this.flags.check) {
        // Record the notification on the host first: if this run dies before the handler runs, the next run owes it.
        await this.recordPendingHandlers(toNotify);
        for (const c of plan.commands) await this.runCommand(c, def.commandTimeoutMs);
        // Every later read must see the host as it is now.
        this.probeCache.clear();
        if (plan.verify) await plan.verify(ctx);
      }
      plan.predict?.(this.predicted);
      this.predicted.anyChange = true;
      for (const h of task.notify ?? []) this.notified.add(h);
      report('changed', plan.changes, undefined, plan.note);
      return true;
    } catch (err) {
      if (err instanceof ConnectionError) {
        // Unreachable is a result of its own, not a task failure: the recap counts it once and the
        // exit code says "unreachable". The reason names the task the connection was lost in.
        this.unreachable = `${err.message} (during task "${task.name}")`;
        return false;
      }
      // An ignored failure is still reported (status "ignored", counted apart): it does not fail the host or the run.
      report(task.ignoreErrors ? 'ignored' : 'failed', [], errorMessage(err));
      if (task.ignoreErrors) return true;
      this.failed = true;
      return false;
    }
  }

  /** Run a play on this host: its tasks in order, then the handlers that were notified, once each. */
  async runPlay(play: HostPlay): Promise<void> {
    if (this.refused) return;
    for (let i = 0; i < play.tasks.length; i++) {
      const ok = await this.runTask(play.tasks[i]!, play.tasks.slice(i + 1));
      if (!ok) return; // notified handlers stay recorded on the host for the next run
    }
    const due = play.handlers.filter((h) => this.notified.has(h.name));
    const ran: string[] = [];
    for (let i = 0; i < due.length; i++) {
      const ok = await this.runTask(due[i]!, due.slice(i + 1), true);
      if (!ok) break;
      ran.push(due[i]!.name);
      this.notified.delete(due[i]!.name);
    }
    try {
      await this.clearPendingHandlers(ran);
    } catch (err) {
      if (err instanceof ConnectionError) this.unreachable = err.message;
      else throw err;
    }
  }

  /** Handlers owed from an earlier run that no play of this run defines. */
  get orphanHandlers(): string[] {
    return [...this.notified];
  }
}

