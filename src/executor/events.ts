/**
 * The executor's event contract: what a run tells the outside world while it runs. Renderers
 * (src/report) turn these into text, TTY views or JSON; the executor imports nothing of them.
 */
import type { Change } from '../modules/index.js';
import { maskDeep } from '../util/secrets.js';

/**
 * `ignored`: the task failed and its `ignore_errors` let the host go on (Ansible's "...ignoring").
 * `refused`: `provision apply` stopped the host before this task did something its plan did not show.
 * `unknown`: a dry run cannot know what the task does: it depends on the result of a task that
 * would change (or on its own command's output); `msg` says "depends on NAME". Never guessed.
 */
export type TaskStatus = 'ok' | 'changed' | 'failed' | 'ignored' | 'refused' | 'skipped' | 'unknown';

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
  /** Dry run: tasks whose outcome cannot be known before the tasks they depend on have run (absent: 0). */
  unknown?: number;
}

/** Everything the engine tells the outside world. Renderers turn these into text, TTY views or JSON. */
export type RunEvent =
  | { kind: 'run-start'; inventory: string; playbook: string; hosts: string[]; check: boolean; time: string }
  | { kind: 'play-start'; play: string; hosts: string[] }
  /** A play whose hosts pattern selects no host of this run: skipped, said in one line. */
  | { kind: 'play-skipped'; play: string; reason: string }
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
  | {
      /** A command a task ran (not in check mode): what -vv shows. The command as described, never its stdin. */
      kind: 'command';
      host: string;
      task: string;
      role?: string;
      handler?: boolean;
      command: string;
      code: number;
      /** The last lines of what it printed (stdout, then stderr). */
      output: string;
      ms: number;
    }
  | { kind: 'warning'; host?: string; msg: string }
  | {
      kind: 'recap';
      hosts: Record<string, HostCounts>;
      wallMs: number;
      check: boolean;
      /** Filled in by the CLI (src/cli/exit-codes.ts), which alone decides exit codes. */
      exitCode?: number;
      /** SSH exec round trips per reachable host (connection-level; what `npm run bench` reports). */
      roundTrips?: Record<string, number>;
      /** Where the time went: process start to run start, and per host connect, facts, the state read. */
      phases?: { startupMs: number; hosts: Record<string, { connectMs: number; factsMs: number; readMs?: number }> };
    };

/** Where a run's events go. */
export interface EventSink {
  emit(event: RunEvent): void;
  /** Flush and stop (live renderers). */
  close?(): Promise<void> | void;
}

/** The renderers' name for an event sink. */
export type Reporter = EventSink;

/**
 * The one place events are masked: every event passes through here before any sink sees it, so no
 * renderer (text, --diff, live view, JSON) can show a registered secret in any of its encodings.
 */
export function maskedSink(sink: EventSink): EventSink {
  return {
    emit: (e) => sink.emit(maskDeep(e)),
    close: () => sink.close?.(),
  };
}

/** A sink that drops everything (the silent check run of `provision apply`). */
export const NO_EVENTS: EventSink = { emit: () => undefined };

export function emptyCounts(): HostCounts {
  return { ok: 0, changed: 0, failed: 0, ignored: 0, refused: 0, skipped: 0, unreachable: 0, unknown: 0 };
}
