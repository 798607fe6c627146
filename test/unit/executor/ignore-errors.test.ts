/**
 * `ignore_errors`: a failure that was ignored is reported as failed-but-ignored (status "ignored",
 * Ansible's "...ignoring"), counted apart (recap `ignored=1`, JSON counts), the host goes on, and
 * the run does not exit 1 for it.
 */
import { describe, expect, it } from 'vitest';
import { exitCodeFor, HostRun } from '../../../src/executor/index.js';
import type { Task } from '../../../src/modules/index.js';
import { formatEvent } from '../../../src/report/format.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { debianFacts, testHost } from '../modules/fixtures.js';
import { RecordedConnection } from './recorded-connection.js';

const command = (name: string, cmd: string, ignoreErrors?: boolean): Task => ({ name, module: 'command', params: { cmd }, ignoreErrors });

async function runTasks(tasks: Task[]) {
  const conn = new RecordedConnection();
  const reporter = new MemoryReporter();
  const run = new HostRun(testHost(), conn, debianFacts(), { check: false }, reporter);
  await run.runPlay({ name: 'p', tasks, handlers: [] });
  return { run, conn, results: reporter.events.filter((e) => e.kind === 'task-result') };
}

describe('ignore_errors', () => {
  it('an ignored failure: status "ignored", counted as ignored not failed, the host goes on, the run exits 2 (changed), not 1', async () => {
    const { run, conn, results } = await runTasks([command('may fail', 'false', true), command('then this', 'true')]);
    expect(conn.ran).toEqual(['false', 'true']);
    expect(results.map((e) => e.kind === 'task-result' && [e.task, e.status])).toEqual([
      ['may fail', 'ignored'],
      ['then this', 'changed'],
    ]);
    expect(results[0]).toMatchObject({ status: 'ignored', msg: expect.stringContaining('it went wrong') });
    expect(run.failed).toBe(false);
    expect(run.counts).toMatchObject({ failed: 0, ignored: 1, changed: 1 });
    expect(exitCodeFor([run.counts])).toBe(2);
  });

  it('only ignored failures: exit 0', async () => {
    const { run } = await runTasks([command('may fail', 'false', true)]);
    expect(run.counts).toMatchObject({ failed: 0, ignored: 1, changed: 0 });
    expect(exitCodeFor([run.counts])).toBe(0);
  });

  it('without ignore_errors the failure stops the host and the run exits 1', async () => {
    const { run, conn, results } = await runTasks([command('must work', 'false'), command('never reached', 'true')]);
    expect(conn.ran).toEqual(['false']);
    expect(results.map((e) => e.kind === 'task-result' && e.status)).toEqual(['failed']);
    expect(run.failed).toBe(true);
    expect(run.counts).toMatchObject({ failed: 1, ignored: 0 });
    expect(exitCodeFor([run.counts])).toBe(1);
  });

  it('the text output says "...ignoring" and the recap shows ignored=1', async () => {
    const { run, results } = await runTasks([command('may fail', 'false', true)]);
    const fmt = { diff: false, verbose: 0, color: false };
    expect(formatEvent(results[0]!, fmt).join('\n')).toMatch(/^web-01: FAILED \(ignored\): may fail: .*it went wrong.* \.\.\.ignoring$/);
    const recap = formatEvent({ kind: 'recap', hosts: { 'web-01': run.counts }, wallMs: 5, check: false, exitCode: 0 }, fmt);
    expect(recap[1]).toMatch(/^web-01\s+ok=0\s+changed=0\s+failed=0\s+unreachable=0\s+skipped=0\s+ignored=1$/);
  });
});
