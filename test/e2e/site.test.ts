import { describe, expect, it } from 'vitest';
import { firstRun } from './first-run.ts';
import { changedTasks, provision } from './lab-env.ts';

describe('the whole site on the lab', () => {
  it('converges from fresh hosts in one run: changes, no failure, no unreachable host', async () => {
    const r = await firstRun(); // throws when the record is another lab boot's or other code's
    const failed = r.events.filter((e) => e.kind === 'task-result' && e.status === 'failed');
    expect(failed.map((e) => `${e.host}: ${e.task}: ${e.msg}`)).toEqual([]);
    expect(r.events.filter((e) => e.kind === 'host-unreachable')).toEqual([]);
    expect(r.code).toBe(2);
    const recap = r.events.find((e) => e.kind === 'recap') as { hosts: Record<string, { changed: number }> };
    for (const [host, counts] of Object.entries(recap.hosts)) expect(counts.changed, host).toBeGreaterThan(0);
  });

  it('a second run changes nothing and exits 0', async () => {
    const second = (await firstRun()).second;
    if (!second) return expect.fail('the global setup did not record a second converge');
    const changed = second.events.filter((e) => e.kind === 'task-result' && e.status === 'changed');
    expect(changed.map((e) => `${e.host}: ${e.role ?? ''} ${e.task}`)).toEqual([]);
    expect(second.code).toBe(0);
  });

  it('--check --diff on the converged site reports no change and exits 0', async () => {
    const r = await provision(['--check', '--diff', '--json']);
    expect(changedTasks(r).map((e) => `${e.host}: ${e.task}`)).toEqual([]);
    expect(r.code).toBe(0);
  });
});
