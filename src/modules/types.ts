import type { z } from 'zod';
import type { Facts, Probe, ProbeResult } from '../facts/index.js';
import type { Host } from '../inventory/index.js';
import type { Connection } from '../transport/index.js';

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
  | {
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
    }
  | {
      kind: 'call';
      describe: string;
      run: (conn: Connection) => Promise<void>;
    };

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
  /** Results of this task's probes, read in one batch with every other task's. */
  results: Map<string, ProbeResult>;
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
  probes(params: P, host: Host, facts: Facts): Probe[];
  /** Read state → compute the change. Never changes the host. */
  plan(params: P, ctx: ModuleContext): Promise<Plan> | Plan;
  /**
   * Params that may carry secrets (a Secret, or a YAML "{{ … }}" that reads one): the module keeps
   * them out of argv, logs and diffs (stdin, 0600 files, sensitive changes). A secret that would
   * reach any other param is refused before any connection (expand.ts, playbook.ts).
   */
  secretParams?: readonly string[];
  /**
   * Params that are POSIX sh command lines: every "{{ … }}" value rendered into them is escaped for
   * the quoting context it stands in (`| safe` opts out), and no secret may ever reach them.
   */
  shellParams?: readonly string[];
  /** Bound of each of its commands when the inventory sets no command_timeout (default 10 min): apt installs need longer. */
  commandTimeoutMs?: number;
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
  /** A task that must run even in check mode because later tasks need what it reads (never changes anything). */
  readOnly?: boolean;
}

export const NO_CHANGE: Plan = { changes: [], commands: [] };
