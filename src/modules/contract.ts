/**
 * The module contract: the one file a module author reads. A module declares its params (a zod
 * schema, secrets marked in it), the typed state it reads (probes), and plan(): state in, changes
 * and commands out, as data. The engine batches every task's probes into one round trip, checks,
 * masks, runs and reports; a module never touches a connection itself.
 */
import { z } from 'zod';
import type { Facts, ProbeResult, RawProbe, SharedRead } from '../facts/index.js';
import type { Host } from '../inventory/index.js';
import type { Connection } from '../transport/index.js';
import { Secret } from '../util/secrets.js';

export type { ProbeResult, SharedRead } from '../facts/index.js';

/**
 * A typed state read: a shell snippet (or its item in a shared read) and the pure parse of its
 * output. Made by the module's exported constructor (`unitState(unit)`, `fileState(path)`…), so its
 * key is spelled once; plan() asks for the value with `ctx.read(probe)`.
 */
export type Probe<T> = RawProbe & {
  /**
   * Pure. `undefined`: the probe has no answer (never read: a case file that gives none, or a state
   * the module knows is not there yet); parse says what that means (absent, false…).
   */
  parse(r: ProbeResult | undefined): T;
};

/** A probe of its own: `script` runs in the batch (stdout and stderr together, and its exit code). */
export function probe<T>(key: string, script: string, parse: (r: ProbeResult | undefined) => T): Probe<T> {
  return { key, script, parse };
}

/** A probe that is one item of a shared read (one process on the host for the whole group). */
export function sharedProbe<T>(key: string, shared: SharedRead, parse: (r: ProbeResult | undefined) => T): Probe<T> {
  return { key, shared, parse };
}

/**
 * Marks a param schema as one that may carry a secret (a Secret, or a YAML "{{ … }}" that reads
 * one), like Ansible's no_log: the module keeps such values out of argv, logs and diffs (stdin,
 * 0600 files, sensitive changes); a secret reaching any OTHER param is refused before connecting.
 */
export function secret<S extends z.ZodType>(schema: S): S {
  return schema.meta({ secret: true }) as S;
}

/** A string param that may be a Secret. */
export function secretString() {
  return secret(z.union([z.string(), z.instanceof(Secret)]));
}

/**
 * Marks a string param as a path on the control machine (a template, a file to copy up): written
 * in a playbook, it is relative to the playbook's folder; the loader resolves it there.
 */
export function controlPath<S extends z.ZodType>(schema: S): S {
  return schema.meta({ controlPath: true }) as S;
}

type Mark = 'secret' | 'controlPath';

/** True when this schema, or a schema inside it (optional, default, record values, array items…), carries the mark. */
function marked(schema: z.ZodType | undefined, mark: Mark, depth = 0): boolean {
  if (!schema || depth > 8) return false;
  if (z.globalRegistry.get(schema)?.[mark] === true) return true;
  const def = schema._zod.def as unknown as Record<string, unknown>;
  const inner = [def.innerType, def.valueType, def.element, def.in, def.out, ...((def.options as unknown[] | undefined) ?? [])];
  return inner.some((s) => s instanceof z.ZodType && marked(s, mark, depth + 1));
}

/** The top-level params of a module whose schema carries the mark. */
function markedParams(def: ModuleDef<unknown>, mark: Mark): string[] {
  const shape = (def.schema as unknown as { shape?: Record<string, z.ZodType> }).shape;
  return shape ? Object.keys(shape).filter((k) => marked(shape[k], mark)) : [];
}

/** The top-level params of a module that take secrets (secret(), secretString() in its schema). */
export function secretParams(def: ModuleDef<unknown>): string[] {
  return markedParams(def, 'secret');
}

/** The top-level params of a module that are paths on the control machine (controlPath() in its schema). */
export function controlPathParams(def: ModuleDef<unknown>): string[] {
  return markedParams(def, 'controlPath');
}

/** What a task would change, as data: rendered by the report, written into plans. */
export interface Change {
  kind: 'file' | 'package' | 'service' | 'user' | 'group' | 'firewall' | 'sql' | 'command' | 'certificate' | 'other';
  /** What is changed: a path, a package, a unit, a rule… */
  target: string;
  /** A short verb phrase: "create", "update content", "install", "start", "enable"… */
  action: string;
  /** For content changes: the text before and after (unified diff rendered by the report). */
  before?: string;
  after?: string;
  /** Content too sensitive or too large for a diff: summarised only. */
  sensitive?: boolean;
}

/** A command is data, so it can be shown, masked, planned and tested without a host. */
export type Command =
  {
      kind: 'shell';
      cmd: string;
      /** Sent on stdin: how secrets and file contents reach a host without appearing in argv. */
      stdin?: string | Buffer;
      /** Exit codes that count as success (default [0]). */
      okCodes?: number[];
      /**
       * Bound on the host, for this command only (command's `timeout`). Default: the inventory's
       * command_timeout, else the module's commandTimeoutMs, else 10 min. When it runs out the host
       * stops the command and every process it started, and the task fails naming the command.
       */
      timeoutMs?: number;
      /** Shown instead of cmd in output (e.g. "upload /etc/haproxy/haproxy.cfg"). */
      describe?: string;
      /**
       * The exit code by which this command says "the new file failed its validation, the live one
       * is untouched" (writeFileCommand with validate): reported as a validation failure.
       */
      validationExit?: number;
    }
  | {
      /**
       * A step that is not one command line: it streams between hosts (a replica seeded from its
       * primary's dump). Runs only where commands run (never in check mode); `describe` is what the
       * report, the plan and -vv show of it.
       */
      kind: 'call';
      describe: string;
      run(target: CallTarget): Promise<void>;
    };

/** What a 'call' step may use of its task's host: its name, and a process with streamed stdin/stdout. */
export type CallTarget = Pick<Connection, 'hostName' | 'spawn'>;

/**
 * What earlier tasks in this run did or would do. In check mode it is the only record of them:
 * later tasks read it before the host, so a dry run predicts instead of failing.
 */
export interface PredictedState {
  packagesInstalled: Set<string>;
  packagesRemoved: Set<string>;
  /** path → content (bytes) that an earlier task wrote (or would write); null = removed. */
  files: Map<string, Buffer | null>;
  directories: Set<string>;
  users: Set<string>;
  groups: Set<string>;
  /** Units whose state was changed; value = predicted active state. */
  services: Map<string, 'active' | 'inactive'>;
  /** true once any earlier task changed (or would change) something on this host. */
  anyChange: boolean;
  /** The package lists were refreshed by an earlier task in this run. */
  aptCacheFresh: boolean;
}

export function emptyPredictedState(): PredictedState {
  return {
    packagesInstalled: new Set(),
    packagesRemoved: new Set(),
    files: new Map(),
    directories: new Set(),
    users: new Set(),
    groups: new Set(),
    services: new Map(),
    anyChange: false,
    aptCacheFresh: false,
  };
}

export interface ModuleContext {
  host: Host;
  facts: Facts;
  check: boolean;
  predicted: PredictedState;
  /**
   * The value of one of this task's probes (read in one batch with every other task's; parsed once
   * per read). A probe the task did not declare has no answer: parse(undefined).
   */
  read<T>(probe: Probe<T>): T;
  /** Read something more from the host (one extra round trip): for modules that need a second look. Bounded by probe_timeout. */
  run(cmd: string, opts?: { stdin?: string | Buffer }): Promise<ProbeResult>;
  /**
   * Prove that a NEW SSH connection to the host can still be made (TCP connect, handshake,
   * authentication, one trivial command), then close it; rejects with a ConnectionError when not.
   * The task's own connection is left as it is. Used by verify steps after a change that could
   * lock the control machine out (ufw commit-confirm): an established session survives a firewall
   * change that refuses new ones. Optional: where the executor does not provide it, modules fall
   * back to ctx.run on the existing connection.
   */
  reconnect?: () => Promise<void>;
  /**
   * The connection to another host of the inventory, from the run's pool (one per host, its host
   * key checked as for any host; opened when that host is not in the run). For a task that reads
   * from a peer: a replica seeded from a dump of its primary. Optional: without it such a task fails.
   */
  peer?: (hostName: string) => Promise<Connection>;
}

export interface Plan {
  /** Nothing here means "ok, no change". */
  changes: Change[];
  /** Run in order when not in check mode. */
  commands: Command[];
  /** Record the effect on the predicted state (called in check and real mode alike). */
  predict?: (state: PredictedState) => void;
  /** A note for the report (e.g. "unit comes from a package installed earlier in this run"). */
  note?: string;
  /** After the commands ran, verify the result (e.g. replication threads up); throws on failure. */
  verify?: (ctx: ModuleContext) => Promise<void>;
}

export interface ModuleDef<P> {
  name: string;
  /** Typed, validated parameters. */
  schema: z.ZodType<P>;
  /** State reads; the executor batches them with every other task's. Keys must be unique per module+params. */
  probes(params: P, target: ProbeTarget): Probe<unknown>[];
  /** Read state → compute the change. Never changes the host. */
  plan(params: P, ctx: ModuleContext): Promise<Plan> | Plan;
  /**
   * Params that are POSIX sh command lines: every "{{ … }}" value rendered into them is escaped for
   * the quoting context it stands in (`| safe` opts out), and no secret may ever reach them.
   */
  shellParams?: readonly string[];
  /** Bound of each of its commands when the inventory sets no command_timeout (default 10 min): apt installs need longer. */
  commandTimeoutMs?: number;
  /** A project's module named like a built-in replaces it only when it says so (else loading it is an error). */
  overrides?: boolean;
}

/** A task: one module invocation with its options. Built by roles (TypeScript) or playbooks (YAML). */
export interface Task {
  name: string;
  module: string;
  params: unknown;
  notify?: string[];
  tags?: string[];
  /** Evaluated when roles are expanded: false skips the task (reported as skipped). */
  when?: boolean;
  /** The role the task comes from (for output and --tags by role). */
  role?: string;
  ignoreErrors?: boolean;
}

/** What a module's probes may depend on besides its params. */
export interface ProbeTarget {
  host: Host;
  facts: Facts;
}

/** Declares a module: typed identity, so `defineModule({ schema, probes, plan })` infers P from the schema. */
export function defineModule<P>(def: ModuleDef<P>): ModuleDef<P> {
  return def;
}

export const NO_CHANGE: Plan = { changes: [], commands: [] };
