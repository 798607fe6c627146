/**
 * `provision apply` refuses, in the real run itself, what its plan does not show: a host whose
 * state changed since the plan (before any task), and a task whose computed changes are not the
 * plan's next ones (before its commands run). Refused is exit 5, and the host is left as it was.
 */
import { describe, expect, it } from 'vitest';
import { exitCodeFor, HostRun } from '../../../src/executor/index.js';
import type { Change, Task } from '../../../src/modules/index.js';
import { PlanGuard } from '../../../src/plan/guard.js';
import { factsFingerprint, keyed, PLAN_VERSION, type HostPlan, type PlanFile, type PlannedTask } from '../../../src/plan/plan.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { debianFacts, testHost } from '../modules/fixtures.js';
import { RecordedConnection } from '../executor/recorded-connection.js';

const run = (cmd: string): Change => ({ kind: 'command', target: cmd, action: 'run' });
const planned = (task: string, changes: Change[], extra: Partial<PlannedTask> = {}): PlannedTask => ({ task, module: 'command', handler: false, changes, ...extra });

function planOf(hosts: Record<string, Partial<HostPlan>>): PlanFile {
  // A plan's fingerprints are keyed with the plan key, as planFromRun writes them.
  const facts = keyed(factsFingerprint(debianFacts()));
  return {
    version: PLAN_VERSION,
    tool: 'provision test',
    planKey: 'test',
    created: new Date().toISOString(),
    inventory: 'inv.yml',
    playbook: 'play.yml',
    hosts: Object.fromEntries(Object.entries(hosts).map(([h, p]) => [h, { tasks: [], ...p, fingerprints: { facts, ...Object.fromEntries(Object.entries(p.fingerprints ?? {}).map(([k, v]) => [k, keyed(v)])) } }])),
  };
}

describe('PlanGuard.checkState', () => {
  const guard = new PlanGuard(planOf({ 'web-01': { fingerprints: { 'file:c:/etc/a': 'aaaa', 'service:nginx': 'bbbb' } } }));

  it('the same facts and state reads: nothing to say', () => {
    expect(guard.checkState('web-01', debianFacts(), new Map([['file:c:/etc/a', 'aaaa'], ['service:nginx', 'bbbb']]))).toEqual([]);
  });

  it('a read that changed, one the plan never made, and facts that changed: each named', () => {
    const facts = debianFacts();
    facts.packages.delete('curl');
    expect(guard.checkState('web-01', facts, new Map([['file:c:/etc/a', 'cccc'], ['user:bob', 'dddd']]))).toEqual([
      'changed since the plan: facts',
      'changed since the plan: file:c:/etc/a',
      'state read now but not in the plan: user:bob',
    ]);
  });

  it('a host the plan does not have', () => {
    expect(guard.checkState('web-09', debianFacts(), new Map())).toEqual(['the host is not in the plan']);
  });
});

describe('PlanGuard.checkChange', () => {
  const plan = () =>
    new PlanGuard(
      planOf({
        'web-01': {
          tasks: [
            planned('one', [run('a')]),
            planned('index page', [{ kind: 'file', target: '/srv/index.html', action: 'create', before: '', after: 'hello\n' }], { module: 'copy' }),
            planned('one', [run('b')]),
            planned('reload nginx', [{ kind: 'service', target: 'nginx.service', action: 'reload' }], { module: 'service', handler: true }),
          ],
        },
      }),
    );

  it('the plan’s changes, in order (a task name used twice matches in turn): allowed, nothing left over', () => {
    const g = plan();
    expect(g.checkChange('web-01', planned('one', [run('a')]))).toBeUndefined();
    expect(g.checkChange('web-01', planned('index page', [{ kind: 'file', target: '/srv/index.html', action: 'update content', after: 'hello\n' }], { module: 'copy' }))).toBeUndefined();
    expect(g.checkChange('web-01', planned('one', [run('b')]))).toBeUndefined();
    expect(g.checkChange('web-01', planned('reload nginx', [{ kind: 'service', target: 'nginx.service', action: 'reload' }], { module: 'service', handler: true }))).toBeUndefined();
    expect(g.notMade('web-01')).toEqual([]);
  });

  it('a change the plan does not have is refused', () => {
    expect(plan().checkChange('web-01', planned('something else', [run('rm -rf /srv')]))).toMatch(/^the run would make a change the plan does not have: \/something else: command rm -rf \/srv: run$/);
  });

  it('another change for a planned task is refused, naming both', () => {
    expect(plan().checkChange('web-01', planned('one', [run('a'), run('extra')]))).toBe(
      'the run computed /one: command a: run; /one: command extra: run, the plan has /one: command a: run',
    );
  });

  it('the same change with other content than the plan showed is refused', () => {
    const g = plan();
    g.checkChange('web-01', planned('one', [run('a')]));
    const other = planned('index page', [{ kind: 'file', target: '/srv/index.html', action: 'create', before: '', after: 'HACKED\n' }], { module: 'copy' });
    expect(g.checkChange('web-01', other)).toBe('the run would write other content than the plan shows: /index page: file /srv/index.html: write content');
  });

  it('a handler is not the task of the same name', () => {
    expect(plan().checkChange('web-01', planned('reload nginx', [{ kind: 'service', target: 'nginx.service', action: 'reload' }], { module: 'service' }))).toMatch(/plan does not have/);
  });

  it('a planned change the run found already made is left over, not refused', () => {
    const g = plan();
    expect(g.checkChange('web-01', planned('index page', [{ kind: 'file', target: '/srv/index.html', action: 'create', after: 'hello\n' }], { module: 'copy' }))).toBeUndefined();
    expect(g.notMade('web-01')).toEqual(['/one: command a: run', '/one: command b: run', 'handler /reload nginx: service nginx.service: reload']);
  });
});

describe('the real run asks the guard (HostRun)', () => {
  const command = (name: string, cmd: string): Task => ({ name, module: 'command', params: { cmd } });

  async function apply(plan: PlanFile, tasks: Task[], facts = debianFacts()) {
    const conn = new RecordedConnection();
    const reporter = new MemoryReporter();
    const host = new HostRun(testHost(), conn, facts, { check: false, guard: new PlanGuard(plan) }, reporter);
    await host.warm(tasks);
    await host.runPlay({ name: 'p', tasks, handlers: [] });
    return { host, conn, results: reporter.events.filter((e) => e.kind === 'task-result') };
  }

  it('a task beyond the plan: the planned one ran, that one never did, the host stops, exit 5', async () => {
    const plan = planOf({ 'web-01': { tasks: [planned('first', [run('true')])] } });
    const { host, conn, results } = await apply(plan, [command('first', 'true'), command('not planned', 'touch /etc/evil'), command('after', 'true')]);
    expect(conn.ran).toEqual(['true']);
    expect(results.map((e) => e.kind === 'task-result' && [e.task, e.status])).toEqual([
      ['first', 'changed'],
      ['not planned', 'refused'],
    ]);
    expect(host.refused).toMatch(/plan does not have: \/not planned: command touch \/etc\/evil: run/);
    expect(host.counts).toMatchObject({ changed: 1, refused: 1, failed: 0 });
    expect(exitCodeFor([host.counts])).toBe(5);
  });

  it('the host changed since the plan (its facts): refused before any task, no command ran', async () => {
    const plan = planOf({ 'web-01': { tasks: [planned('first', [run('true')])] } });
    const facts = debianFacts();
    facts.packages.set('telnetd', { version: '1' });
    const { host, conn, results } = await apply(plan, [command('first', 'true')], facts);
    expect(conn.ran).toEqual([]);
    expect(results).toMatchObject([{ task: 'state read by this run', status: 'refused', msg: 'the host changed since the plan: changed since the plan: facts' }]);
    expect(exitCodeFor([host.counts])).toBe(5);
  });

  it('exactly the plan: every planned command ran, exit 2', async () => {
    const plan = planOf({ 'web-01': { tasks: [planned('first', [run('true')]), planned('second', [run(':')])] } });
    const { host, conn } = await apply(plan, [command('first', 'true'), command('second', ':')]);
    expect(conn.ran).toEqual(['true', ':']);
    expect(host.refused).toBeUndefined();
    expect(exitCodeFor([host.counts])).toBe(2);
  });
});
