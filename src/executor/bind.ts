import { getModule, type ModuleDef, type Probe, type ProbeTarget, type Task } from '../modules/index.js';
import { errorMessage } from '../util/errors.js';

/** Everything about a task but its module's params: what the run, the report and a plan need. */
export interface TaskMeta {
  readonly name: string;
  readonly module: string;
  /** The role the task comes from (for output, and --tags by role). */
  readonly role?: string;
  readonly notify: readonly string[];
  readonly tags: readonly string[];
  /** false: skipped (reported as such), never bound. */
  readonly when: boolean;
  readonly ignoreErrors: boolean;
}

/** A task ready to run on one host: its params parsed and validated ONCE, its probes built ONCE. */
export interface BoundTask<P = unknown> {
  readonly def: ModuleDef<P>;
  readonly params: P;
  readonly meta: TaskMeta;
  readonly probes: readonly Probe<unknown>[];
}

/**
 * A task that is not bound: `when` was false (error undefined: it is skipped), or its params or
 * probes are wrong for this host (error: the task fails when the run reaches it, as any failure).
 */
export interface UnboundTask {
  readonly meta: TaskMeta;
  readonly error?: string;
}

export type HostTask = BoundTask | UnboundTask;

export function isBound(t: HostTask): t is BoundTask {
  return 'def' in t;
}

export function taskMeta(task: Task): TaskMeta {
  return {
    name: task.name,
    module: task.module,
    role: task.role,
    notify: task.notify ?? [],
    tags: task.tags ?? [],
    when: task.when !== false,
    ignoreErrors: task.ignoreErrors ?? false,
  };
}

/** The one place a task's params are parsed: by its module's schema, for this host. */
export function bindTask(task: Task, target: ProbeTarget): HostTask {
  const meta = taskMeta(task);
  if (!meta.when) return { meta };
  const def = getModule(task.module);
  if (!def) return { meta, error: `unknown module "${task.module}"` };
  const parsed = def.schema.safeParse(task.params);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    return { meta, error: `${task.module}: ${i.path.join('.') || 'params'}: ${i.message}` };
  }
  try {
    return { def, params: parsed.data, meta, probes: def.probes(parsed.data, target) };
  } catch (err) {
    return { meta, error: errorMessage(err) };
  }
}
