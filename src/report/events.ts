import type { Change } from '../modules/index.js';

/**
 * `ignored`: the task failed and its `ignore_errors` let the host go on (Ansible's "...ignoring").
 * `refused`: `provision apply` stopped the host before this task did something its plan did not show.
 */
export type TaskStatus = 'ok' | 'changed' | 'failed' | 'ignored' | 'refused' | 'skipped';

export interface HostCounts {
  ok: number;
  changed: number;
  failed: number;
  /** Failures that `ignore_errors` let pass: reported, but they do not make the run fail. */
  ignored: number;
  /** Hosts `provision apply` stopped because the run would have done something its plan did not show. */
  refused: number;
  skipped: number;
  unreachable: number;
}

/** Everything the engine tells the outside world. Renderers turn these into text, TTY views or JSON. */
export type RunEvent =
  | { kind: 'run-start'; inventory: string; playbook: string; hosts: string[]; check: boolean; time: string }
  | { kind: 'play-start'; play: string; hosts: string[] }
  | { kind: 'host-connected'; host: string; ms: number }
  | { kind: 'host-unreachable'; host: string; reason: string; hint?: string }
  | { kind: 'task-start'; host: string; task: string; role?: string; handler?: boolean }
  | {
      kind: 'task-result';
      host: string;
      task: string;
      role?: string;
      module: string;
      handler?: boolean;
      status: TaskStatus;
      changes: Change[];
      msg?: string;
      note?: string;
      ms: number;
    }
  | { kind: 'warning'; host?: string; msg: string }
  | {
      kind: 'recap';
      hosts: Record<string, HostCounts>;
      wallMs: number;
      check: boolean;
      exitCode: number;
      /** SSH exec round trips per reachable host (connection-level; what `npm run bench` reports). */
      roundTrips?: Record<string, number>;
      /** Where the time went: process start to run start, and per host connect, facts, the state read. */
      phases?: { startupMs: number; hosts: Record<string, { connectMs: number; factsMs: number; readMs?: number }> };
    };

export interface Reporter {
  emit(event: RunEvent): void;
  /** Flush and stop (live renderers). */
  close?(): Promise<void> | void;
}

export function emptyCounts(): HostCounts {
  return { ok: 0, changed: 0, failed: 0, ignored: 0, refused: 0, skipped: 0, unreachable: 0 };
}
