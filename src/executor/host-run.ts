import { createHash } from 'node:crypto';
import { factsFingerprint, ProbeTimeoutError, type Facts, type ProbeResult } from '../facts/index.js';
import { PENDING_HANDLERS_FILE, STATE_DIR } from '../host-paths.js';
import type { Host } from '../inventory/index.js';
import { emptyPredictedState, type Change, type Command, type ModuleContext, type PredictedState, type Probe, type Task } from '../modules/index.js';
import { CommandTimeoutError, DEFAULT_COMMAND_TIMEOUT_MS, type ExecResult } from '../transport/index.js';
import { ConnectionError, errorMessage, ModuleError, ValidationError } from '../util/errors.js';
import { bindTask, isBound, type BoundTask, type HostTask } from './bind.js';
import { emptyCounts, maskedSink, NO_EVENTS, type EventSink, type HostCounts, type TaskStatus } from './events.js';
import { evaluate, evaluateYamlTask, type HostPlay, type PlayExpansion, type Step } from './expand.js';
import { USER_NAME, type Expr, type YamlTask } from './playbook.js';
import { analyzeString, isTemplate, renderString, secretsRead, truthy } from '../modules/lib/render.js';
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

/** How a host goes on after a task or a block: on, stopped, or with a failure a block's rescue takes over. */
type Flow = 'go' | 'stop' | 'caught';

/** What `register` keeps of a task (Ansible's names). */
export interface TaskResult {
  changed: boolean;
  failed: boolean;
  skipped: boolean;
  msg?: string;
  rc?: number;
  stdout?: string;
  stderr?: string;
  stdout_lines?: string[];
  stderr_lines?: string[];
}

const chomp = (text: string): string => text.replace(/[\r\n]+$/, '');
const lines = (text: string): string[] => (chomp(text) === '' ? [] : chomp(text).split('\n'));

/** The YAML task a bound task comes from, and the vars its changed_when / failed_when see. */
interface TaskLanguage {
  task: YamlTask;
  vars: Record<string, unknown>;
}

interface TaskRun {
  flow: Flow;
  result: TaskResult;
  /** In a dry run: the result is not known (the task would change); names what it depends on. */
  unknown?: string;
  reported: boolean;
}

/**
 * What the hosts of one play share: run_once tasks, run by the first host that reaches them, their
 * result then registered on every host of the play.
 */
export class PlayShared {
  private readonly slots = new Map<number | string, Promise<RunOnceDone>>();

  claim(taskId: number | string, host: string): { owner: true; settle: (d: RunOnceDone) => void } | { owner: false; done: Promise<RunOnceDone> } {
    const taken = this.slots.get(taskId);
    if (taken) return { owner: false, done: taken };
    let settle!: (d: RunOnceDone) => void;
    this.slots.set(taskId, new Promise<RunOnceDone>((resolve) => (settle = resolve)));
    void host;
    return { owner: true, settle };
  }
}

interface RunOnceDone {
  value: unknown;
  unknown?: string;
  host: string;
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

/** What a no_log task shows in place of its output, command line and messages. */
const NO_LOG = 'hidden (no_log: true)';

/** A change of a no_log task: what and where, not the content (no diff); a command's line is content. */
function hiddenChange(c: Change): Change {
  return { kind: c.kind, target: c.kind === 'command' ? NO_LOG : c.target, action: c.action, ...(c.before !== undefined || c.after !== undefined ? { sensitive: true } : {}) };
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
  /** delegate_to: the state read on each host tasks are delegated to (its own, never this host's). */
  private readonly delegated = new Map<string, { session: HostSession; cache: StateCache }>();
  /** Results registered so far (`register: NAME`), for later conditions and templates; they last the whole run. */
  private readonly registered: Record<string, unknown> = {};
  /** In a dry run: registered results that are not known (the task would change), and what each depends on. */
  private readonly unknownRegisters = new Map<string, string>();
  /** In a dry run, inside a block with a rescue: the first task whose success cannot be known (a command that would run). */
  private uncertain: string | undefined;
  failed = false;
  unreachable: string | undefined;
  refused: string | undefined;

  constructor(
    readonly host: Host,
    readonly session: HostSession,
    readonly facts: Facts,
    private readonly flags: RunFlags,
    private readonly sink: EventSink,
    /** delegate_to: the session of another host of the inventory (connected once for the run). */
    private readonly delegate?: (host: string) => Promise<HostSession>,
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

  /**
   * Who a YAML command task's command runs as: its become / become_user (a template of the user
   * rendered over its vars), or undefined for the inventory's become settings. Only command tasks
   * switch user (the loader refuses it elsewhere).
   */
  private runAs(lang: TaskLanguage | undefined, module: string): { become?: boolean; becomeUser?: string; shown?: string } | undefined {
    const b = lang?.task.become;
    if (!b || module !== 'command') return undefined;
    let user = b.user;
    if (user !== undefined && isTemplate(user)) {
      const secrets = secretsRead(analyzeString(user), lang!.vars);
      if (secrets.length) throw new ModuleError(`${b.at}: reads the secret var "${secrets[0]}": a user name goes into sudo's command line`);
      user = renderString(user, lang!.vars).trim();
      if (!USER_NAME.test(user)) throw new ModuleError(`${b.at}: gave ${JSON.stringify(user)}, which is not a user name`);
    }
    const becomes = b.become ?? this.host.connection.become;
    const as = user ?? this.host.connection.becomeUser;
    return { become: b.become, becomeUser: user, shown: becomes ? as : this.host.connection.user };
  }

  private async runCommand(c: Command, task: BoundTask, handler: boolean, session: HostSession = this.session, noLog = false, runAs?: { become?: boolean; becomeUser?: string }): Promise<ExecResult | undefined> {
    if (c.kind === 'call') {
      const started = Date.now();
      await c.run({ hostName: this.host.name, spawn: session.spawn ? (command, opts) => session.spawn!(command, opts) : undefined });
      const { meta } = task;
      this.sink.emit({ kind: 'command', host: this.host.name, task: meta.name, role: meta.role, handler, command: noLog ? NO_LOG : c.describe, code: 0, output: '', ms: Date.now() - started });
      return undefined;
    }
    // The task's own bound, else the inventory's, else the module's, else the transport's default.
    const timeoutMs = c.timeoutMs ?? this.host.connection.commandTimeoutMs ?? task.def.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const started = Date.now();
    const res = await session.exec(c.cmd, { stdin: c.stdin, timeoutMs, ...(runAs ? { become: runAs.become, becomeUser: runAs.becomeUser } : {}) }).catch((err: unknown) => {
      throw err instanceof CommandTimeoutError ? err.as(c.describe ?? `command \`${c.cmd.split('\n')[0]}\``, c.timeoutMs ? "the task's timeout" : 'command_timeout') : err;
    });
    const { meta } = task;
    this.sink.emit({
      kind: 'command',
      host: this.host.name,
      task: meta.name,
      role: meta.role,
      handler,
      command: noLog ? NO_LOG : (c.describe ?? c.cmd),
      code: res.code,
      output: noLog ? '' : [res.stdout.trim(), res.stderr.trim()].filter(Boolean).join('\n').split('\n').slice(-COMMAND_OUTPUT_LINES).join('\n'),
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
    return res;
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

  /** Where a task runs: this host's session and state, or (delegate_to) those of the host it is delegated to. */
  private async where(lang: TaskLanguage | undefined): Promise<{ session: HostSession; cache: StateCache; on?: string }> {
    const to = lang?.task.delegateTo?.host;
    if (to === undefined || to === this.host.name) return { session: this.session, cache: this.cache };
    let w = this.delegated.get(to);
    if (!w) {
      if (!this.delegate) throw new ModuleError(`delegate_to ${to}: this run cannot reach other hosts`);
      const session = await this.delegate(to);
      w = { session, cache: new StateCache(session) };
      this.delegated.set(to, w);
    }
    return { ...w, on: to };
  }

  private context(session: HostSession = this.session, cache: StateCache = this.cache): ModuleContext {
    return {
      host: this.host,
      facts: this.facts,
      check: this.flags.check,
      predicted: this.predicted,
      read: (probe) => cache.read(probe),
      run: async (cmd, opts) => {
        const r = await session.exec(cmd, { stdin: opts?.stdin, timeoutMs: session.probeTimeoutMs }).catch((err: unknown) => {
          throw err instanceof CommandTimeoutError ? err.as(`reading the host's state: \`${cmd.split('\n')[0]}\``, 'probe_timeout') : err;
        });
        return { stdout: r.stdout, code: r.code };
      },
      reconnect: session.freshLogin ? () => session.freshLogin!() : undefined,
      peer: session.peer ? (name) => session.peer!(name) : undefined,
    };
  }

  /** What a task did, as `register` keeps it (and as changed_when / failed_when see it). */
  private static result(status: TaskStatus, msg?: string, exec?: ExecResult): TaskResult {
    return {
      changed: status === 'changed',
      failed: status === 'failed' || status === 'ignored',
      skipped: status === 'skipped',
      ...(msg !== undefined ? { msg } : {}),
      // As Ansible's command module: the output without its trailing newline.
      ...(exec ? { rc: exec.code, stdout: chomp(exec.stdout), stderr: chomp(exec.stderr), stdout_lines: lines(exec.stdout), stderr_lines: lines(exec.stderr) } : {}),
    };
  }

  /**
   * Run list[at]: read state, plan, apply when needed, report. The rest of the list is read in the
   * same round trip when its state is not read yet. `lang`: the YAML task it comes from (register,
   * changed_when, failed_when). `rescuable`: a block's rescue takes a failure over.
   */
  private async runTask(list: readonly HostTask[], at: number, handler: boolean, lang?: TaskLanguage, rescuable = false): Promise<TaskRun> {
    const task = list[at]!;
    const { meta } = task;
    if (!this.selected(task) && !handler) return { flow: 'go', result: HostRun.result('skipped'), reported: false };
    const started = Date.now();
    const noLog = lang?.task.noLog === true;
    const report = (status: TaskStatus, shownChanges: Change[], shownMsg?: string, note?: string) => {
      // no_log: what changes is said (kind, target, action), never its content, output or message.
      const changes = noLog ? shownChanges.map(hiddenChange) : shownChanges;
      const msg = noLog && shownMsg !== undefined ? NO_LOG : shownMsg;
      this.counts[status] = (this.counts[status] ?? 0) + 1;
      this.outcomes.push({ task: meta.name, role: meta.role, module: meta.module, handler, status, changes, msg });
      this.sink.emit({ kind: 'task-result', host: this.host.name, task: meta.name, role: meta.role, module: meta.module, handler, status, changes, msg, note, ms: Date.now() - started });
    };
    if (!meta.when) {
      report('skipped', []);
      return { flow: 'go', result: HostRun.result('skipped'), reported: true };
    }
    this.sink.emit({ kind: 'task-start', host: this.host.name, task: meta.name, role: meta.role, handler });
    const register = lang?.task.register;
    /** The vars changed_when / failed_when see: the item's, and the task's own result under its register name. */
    const withResult = (r: TaskResult) => ({ ...(lang?.vars ?? {}), ...this.registered, ...(register ? { [register]: r } : {}) });
    const holds = (exprs: readonly Expr[], r: TaskResult) => exprs.length > 0 && exprs.every((e) => truthy(evaluate(lang!.task, e, withResult(r))));
    try {
      if (!isBound(task)) throw new ModuleError(task.error!);
      const where = await this.where(lang);
      const cache = where.cache;
      await cache.fill([list], at);
      const hung = task.probes.find((p) => cache.hung.has(p.key));
      if (hung) throw cache.hung.get(hung.key);
      const ctx = this.context(where.session, cache);
      const planned = await task.def.plan(task.params, ctx);
      // A task's become_user is said in what it would do (check mode, plans), not only in what it does.
      const runAs = this.runAs(lang, meta.module);
      const plan = runAs?.shown === undefined ? planned : { ...planned, changes: planned.changes.map((c) => (c.kind === 'command' ? { ...c, action: `${c.action} as ${runAs.shown}` } : c)) };
      // A plan may be a shared constant: the note is the run's own.
      // Read when reported, not now: a plan's verify may set its note after the commands ran (a replica's seed).
      const note = () => (where.on === undefined ? plan.note : plan.note ? `${plan.note}; delegated to ${where.on}` : `delegated to ${where.on}`);
      if (plan.changes.length === 0) {
        report('ok', [], undefined, note());
        return { flow: 'go', result: HostRun.result('ok'), reported: true };
      }
      if (!this.flags.check && this.flags.guard) {
        const why = this.flags.guard.checkChange(this.host.name, { task: meta.name, role: meta.role, module: meta.module, handler, changes: plan.changes });
        if (why) {
          this.refused = why;
          report('refused', [], why);
          return { flow: 'stop', result: HostRun.result('failed', why), reported: true };
        }
      }
      const changedWhen = lang?.task.changedWhen ?? [];
      const failedWhen = lang?.task.failedWhen ?? [];
      let exec: ExecResult | undefined;
      if (this.flags.check) {
        // A command that would run may fail: whether a block's rescue runs is then not known.
        if (meta.module === 'command') this.uncertain ??= register ?? meta.name;
        // The commands do not run: a condition on their result cannot be known, and is not guessed.
        const own = [...changedWhen, ...failedWhen].some((e) => register !== undefined && e.roots.includes(register));
        if (own) {
          this.uncertain ??= register;
          report('unknown', plan.changes, `depends on ${register}`);
          return { flow: 'go', result: HostRun.result('unknown'), unknown: register, reported: true };
        }
        if (failedWhen.length && holds(failedWhen, HostRun.result('changed'))) throw new ModuleError(`failed_when holds: ${failedWhen.map((e) => e.text).join(' and ')}`);
        if (changedWhen.length && !holds(changedWhen, HostRun.result('changed'))) {
          report('ok', [], undefined, 'changed_when does not hold: the command would run without changing anything');
          return { flow: 'go', result: HostRun.result('ok'), unknown: register, reported: true };
        }
      } else {
        const toNotify = meta.notify.filter((h) => !this.notified.has(h));
        // Record the notification on the host first: if this run dies before the handler runs, the next run owes it.
        // (With changed_when, it is recorded once the task turns out to have changed.)
        if (!changedWhen.length) await this.recordPendingHandlers(toNotify);
        try {
          for (const c of plan.commands) exec = (await this.runCommand(c, task, handler, where.session, noLog, runAs)) ?? exec;
        } catch (err) {
          // failed_when decides whether a command that exited non-zero failed.
          if (!(failedWhen.length && err instanceof ModuleError && err.detail?.exitCode !== undefined)) throw err;
          exec = { code: err.detail.exitCode!, stdout: err.detail.stdout ?? '', stderr: err.detail.stderr ?? '' };
        } finally {
          // Every later read must see the host as it is now.
          cache.invalidate();
        }
        const ran = HostRun.result('changed', undefined, exec);
        if (failedWhen.length ? holds(failedWhen, ran) : false) {
          throw new ModuleError(`failed_when holds: ${failedWhen.map((e) => e.text).join(' and ')}${exec ? ` (exit ${exec.code})` : ''}`, exec ? { exitCode: exec.code, stdout: exec.stdout, stderr: exec.stderr } : undefined);
        }
        if (changedWhen.length && !holds(changedWhen, ran)) {
          report('ok', [], undefined, note());
          return { flow: 'go', result: { ...ran, changed: false }, reported: true };
        }
        if (changedWhen.length) await this.recordPendingHandlers(toNotify);
        if (plan.verify) await plan.verify(ctx);
      }
      plan.predict?.(this.predicted);
      this.predicted.anyChange = true;
      for (const h of meta.notify) this.notified.add(h);
      report('changed', plan.changes, undefined, note());
      // In a dry run nothing ran: what the task registers (its output, its exit code) is not known.
      return { flow: 'go', result: HostRun.result('changed', undefined, exec), unknown: this.flags.check ? (register ?? meta.name) : undefined, reported: true };
    } catch (err) {
      if (err instanceof ConnectionError) {
        // Unreachable is a result of its own, not a task failure: the recap counts it once and the
        // exit code says "unreachable". The reason names the task the connection was lost in.
        this.unreachable = `${err.message} (during task "${meta.name}")`;
        return { flow: 'stop', result: HostRun.result('failed', err.message), reported: true };
      }
      const msg = errorMessage(err);
      const detail = err instanceof ModuleError && err.detail?.exitCode !== undefined ? { code: err.detail.exitCode, stdout: err.detail.stdout ?? '', stderr: err.detail.stderr ?? '' } : undefined;
      // An ignored failure is still reported (status "ignored", counted apart): it does not fail the host or the run.
      // A failure a block's rescue takes over is reported the same way, and the rescue runs.
      if (meta.ignoreErrors || rescuable) {
        report('ignored', [], msg, meta.ignoreErrors ? undefined : "rescued: the block's rescue runs");
        return { flow: meta.ignoreErrors ? 'go' : 'caught', result: HostRun.result('failed', msg, detail), reported: true };
      }
      report('failed', [], msg);
      this.failed = true;
      return { flow: 'stop', result: HostRun.result('failed', msg, detail), reported: true };
    }
  }

  /** --tags / --skip-tags over a YAML task's tags, before it is evaluated. */
  private selectedTags(tags: readonly string[], role?: string): boolean {
    const all = new Set([...tags, ...(role ? [role] : [])]);
    if (this.flags.skipTags?.some((tag) => all.has(tag))) return false;
    if (this.flags.tags?.length && !all.has('always')) return this.flags.tags.some((tag) => all.has(tag));
    return true;
  }

  /** Steps in order; stops at the first that does not let the host go on. */
  private async runSteps(play: HostPlay, steps: readonly Step[], rescuable: boolean, shared?: PlayShared): Promise<Flow> {
    for (const step of steps) {
      const flow = await this.runStep(play, step, rescuable, shared);
      if (flow !== 'go') return flow;
    }
    return 'go';
  }

  private async runStep(play: HostPlay, step: Step, rescuable: boolean, shared?: PlayShared): Promise<Flow> {
    if (step.kind === 'task') return (await this.runTask(play.tasks, step.index, false, undefined, rescuable)).flow;
    if (step.kind === 'yaml') return this.runYaml(play, step, rescuable, shared);
    // A block: its tasks; on a failure its rescue (the failure is then taken over); always its always.
    const outer = this.uncertain;
    this.uncertain = undefined;
    let flow = await this.runSteps(play, step.block, rescuable || step.rescue.length > 0, shared);
    const uncertain = this.uncertain;
    this.uncertain = outer ?? uncertain;
    if (flow === 'caught' && step.rescue.length) flow = await this.runSteps(play, step.rescue, rescuable, shared);
    // A dry run cannot know whether a command of the block would fail: its rescue is not guessed either way.
    else if (flow === 'go' && this.flags.check && uncertain !== undefined) this.unknownSteps(play, step.rescue, uncertain);
    // Unreachable or refused: nothing more runs on the host. A failure still runs `always`.
    if (step.always.length && !this.unreachable && !this.refused) {
      const after = await this.runSteps(play, step.always, rescuable, shared);
      if (after !== 'go') flow = flow === 'stop' ? 'stop' : after;
    }
    return flow;
  }

  /** Report every task of these steps as unknown in a dry run (a rescue that may or may not run); what they register is unknown too. */
  private unknownSteps(play: HostPlay, steps: readonly Step[], dependsOn: string): void {
    for (const step of steps) {
      if (step.kind === 'block') {
        for (const part of [step.block, step.rescue, step.always]) this.unknownSteps(play, part, dependsOn);
        continue;
      }
      const meta = step.kind === 'task' ? play.tasks[step.index]!.meta : { name: step.task.name, module: step.task.module, role: step.task.role, tags: step.task.tags ?? [] };
      if (!this.selectedTags(meta.tags, meta.role)) continue;
      if (step.kind === 'yaml' && step.task.register) this.register(step.task.register, HostRun.result('skipped'), dependsOn);
      const msg = `depends on ${dependsOn} (the block's rescue runs if it fails)`;
      this.counts.unknown = (this.counts.unknown ?? 0) + 1;
      this.outcomes.push({ task: meta.name, role: meta.role, module: meta.module, handler: false, status: 'unknown', changes: [], msg });
      this.sink.emit({ kind: 'task-result', host: this.host.name, task: meta.name, role: meta.role, module: meta.module, status: 'unknown', changes: [], msg, ms: 0 });
    }
  }

  /** A YAML task: evaluated now when it reads a registered result, else as expanded ahead; its result registered. */
  private async runYaml(play: HostPlay, step: Extract<Step, { kind: 'yaml' }>, rescuable: boolean, shared?: PlayShared): Promise<Flow> {
    const t = step.task;
    if (!this.selectedTags(t.tags ?? [], t.role)) return 'go';
    if (t.runOnce && shared) {
      const slot = shared.claim(t.onceKey ?? t.id, this.host.name);
      if (!slot.owner) {
        // Ran on another host of the play: its result is this host's too (Ansible registers it on every host).
        const done = await slot.done;
        if (t.register) this.register(t.register, done.value, done.unknown);
        const started = Date.now();
        this.counts.skipped++;
        this.outcomes.push({ task: t.name, role: t.role, module: t.module, handler: false, status: 'skipped', changes: [], msg: `run_once: ran on ${done.host}` });
        this.sink.emit({ kind: 'task-result', host: this.host.name, task: t.name, role: t.role, module: t.module, status: 'skipped', changes: [], msg: `run_once: ran on ${done.host}`, ms: Date.now() - started });
        return 'go';
      }
      let outcome: { value: unknown; unknown?: string } = { value: HostRun.result('skipped') };
      try {
        const r = await this.runYamlHere(play, step, rescuable);
        outcome = r.registered;
        return r.flow;
      } finally {
        slot.settle({ ...outcome, host: this.host.name });
      }
    }
    return (await this.runYamlHere(play, step, rescuable)).flow;
  }

  private async runYamlHere(play: HostPlay, step: Extract<Step, { kind: 'yaml' }>, rescuable: boolean): Promise<{ flow: Flow; registered: { value: unknown; unknown?: string } }> {
    const t = step.task;
    const started = Date.now();
    const reportOnce = (status: TaskStatus, shownMsg: string) => {
      const msg = t.noLog ? NO_LOG : shownMsg;
      this.counts[status] = (this.counts[status] ?? 0) + 1;
      this.outcomes.push({ task: t.name, role: t.role, module: t.module, handler: false, status, changes: [], msg });
      this.sink.emit({ kind: 'task-result', host: this.host.name, task: t.name, role: t.role, module: t.module, status, changes: [], msg, ms: Date.now() - started });
    };
    const done = (flow: Flow, value: unknown, unknown?: string) => {
      if (t.register) this.register(t.register, value, unknown);
      return { flow, registered: { value, unknown } };
    };
    // A dry run does not know what a task that would change registers: what depends on it is not guessed.
    const dependsOn = t.registersRead.find((r) => this.unknownRegisters.has(r));
    if (dependsOn !== undefined) {
      reportOnce('unknown', `depends on ${dependsOn}`);
      return done('go', HostRun.result('unknown'), dependsOn);
    }
    let runs: Array<{ list: readonly HostTask[]; at: number; vars: Record<string, unknown> }>;
    if (step.ahead) runs = step.ahead.map((a) => ({ list: play.tasks, at: a.index, vars: a.vars }));
    else {
      try {
        const target = { host: this.host, facts: this.facts };
        runs = evaluateYamlTask(t, step.vars || !play.varsWith ? { ...(step.vars ?? play.vars ?? {}), ...this.registered } : play.varsWith(this.registered), this.host.name, step.templateVars).map((it) => ({ list: [bindTask(it.task, target)], at: 0, vars: it.vars }));
      } catch (err) {
        const msg = errorMessage(err);
        if (t.ignoreErrors || rescuable) {
          reportOnce('ignored', msg);
          return done(t.ignoreErrors ? 'go' : 'caught', HostRun.result('failed', msg));
        }
        reportOnce('failed', msg);
        this.failed = true;
        return done('stop', HostRun.result('failed', msg));
      }
    }
    const results: TaskResult[] = [];
    let flow: Flow = 'go';
    let unknown: string | undefined;
    for (const r of runs) {
      const ran = await this.runTask(r.list, r.at, false, { task: t, vars: r.vars }, rescuable);
      results.push(ran.result);
      unknown ??= ran.unknown;
      flow = ran.flow;
      if (flow !== 'go') break;
    }
    if (!t.loop) return done(flow, results[0] ?? HostRun.result('skipped'), unknown);
    // A loop registers every item's result (Ansible's `results`), and what they add up to.
    return done(flow, { changed: results.some((r) => r.changed), failed: results.some((r) => r.failed), skipped: results.length > 0 && results.every((r) => r.skipped), results }, unknown);
  }

  /** Keep a task's result for later conditions and templates; in a dry run, what is not known is marked so. */
  private register(name: string, value: unknown, unknown: string | undefined): void {
    this.registered[name] = value;
    if (unknown !== undefined && this.flags.check) this.unknownRegisters.set(name, unknown);
    else this.unknownRegisters.delete(name);
  }

  /** Run a play on this host: its tasks in order, then the handlers that were notified, once each. */
  private async runTasks(play: HostPlay, shared?: PlayShared): Promise<void> {
    if (this.refused) return;
    const steps: Step[] = play.steps ?? play.tasks.map((_, index) => ({ kind: 'task', index }));
    // notified handlers stay recorded on the host for the next run
    if ((await this.runSteps(play, steps, false, shared)) !== 'go') return;
    const dueAt = play.handlers.flatMap((h, i) => (this.notified.has(h.meta.name) ? [i] : []));
    const due = dueAt.map((i) => play.handlers[i]!);
    const ran: string[] = [];
    for (let i = 0; i < due.length; i++) {
      // A YAML handler's own keys (no_log, changed_when / failed_when) apply as they do to a task.
      if ((await this.runTask(due, i, true, play.handlerSources?.[dueAt[i]!])).flow !== 'go') break;
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
  async runPlay(name: string, expansion: PlayExpansion, shared?: PlayShared): Promise<void> {
    try {
      if (!expansion.ok) throw expansion.error;
      await this.runTasks(expansion.play, shared);
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
