import type { EventSink, HostCounts, RunResult } from '../executor/index.js';

/** The exit codes (README "Exit codes"). */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  CHANGED: 2,
  UNREACHABLE: 3,
  INPUT: 4,
  DRIFT_REFUSED: 5,
} as const;

/**
 * The run's exit code from every host's counts. Precedence, highest first: a failed task (1), an
 * unreachable host (3), a host `provision apply` refused (5), a change (2), nothing (0). A failure
 * that `ignore_errors` let pass is counted as `ignored` and never raises the code: the run did what
 * the playbook asked. A dry run's `unknown` task (it depends on the result of a task that would
 * change) counts as a change: the dry run cannot promise that nothing changes.
 */
export function exitCodeFor(counts: Iterable<HostCounts>): number {
  let failed = false;
  let unreachable = false;
  let refused = false;
  let changed = false;
  for (const c of counts) {
    failed ||= c.failed > 0;
    unreachable ||= c.unreachable > 0;
    refused ||= c.refused > 0;
    changed ||= c.changed > 0 || (c.unknown ?? 0) > 0;
  }
  if (failed) return EXIT.FAILED;
  if (unreachable) return EXIT.UNREACHABLE;
  if (refused) return EXIT.DRIFT_REFUSED;
  if (changed) return EXIT.CHANGED;
  return EXIT.OK;
}

/** The exit code of a run's hosts. */
export function exitCodeOf(res: Pick<RunResult, 'hosts'>): number {
  return exitCodeFor(Object.values(res.hosts).map((h) => h.counts));
}

/** The recap as the CLI shows it: with the exit code the run will end with (--json readers read it there). */
export function withExitCode(sink: EventSink): EventSink {
  return {
    emit: (e) => sink.emit(e.kind === 'recap' ? { ...e, exitCode: exitCodeFor(Object.values(e.hosts)) } : e),
    close: () => sink.close?.(),
  };
}
