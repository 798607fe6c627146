/**
 * The executor against recorded hosts (RecordedSession: probe answers by key, every command kept
 * with its stdin): what a run does and does not send to a host, in what order, and what it returns
 * as data. Each test names the behaviour it holds; none of them needs a real host.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { exitCodeOf } from '../../../src/cli/exit-codes.js';
import { loadPlaybook, runPlaybook, type ChangeGuard, type Gate, type RunEvent } from '../../../src/executor/index.js';
import type { Facts, ProbeResult } from '../../../src/facts/index.js';
import { PENDING_HANDLERS_FILE } from '../../../src/host-paths.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { probe, registerModule, type Plan } from '../../../src/modules/index.js';
import { PlanGuard } from '../../../src/plan/guard.js';
import { planFromRun } from '../../../src/plan/plan.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { ConnectionError } from '../../../src/util/errors.js';
import { debianFacts, fileProbeResults } from '../modules/fixtures.js';
import { RecordedConnector, RecordedSession, type RecordedSessionOptions } from './recorded-connection.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-run-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Two hosts nobody connects to: the connector is recorded. */
const INVENTORY = `hosts:
  web-01: { address: 127.0.0.1, port: 1 }
  web-02: { address: 127.0.0.1, port: 1, vars: { flag: true } }
`;

const missing: ProbeResult = { stdout: '', code: 1 };
const present: ProbeResult = { stdout: '', code: 0 };

function files(text: string, name: string): string {
  const file = path.join(tmp, `${name}-${Math.random().toString(36).slice(2, 8)}`);
  writeFileSync(file, text);
  return file;
}

interface RunSetup {
  check?: boolean;
  tags?: string[];
  skipTags?: string[];
  limit?: string;
  /** Per host: its recorded session's answers and command responses (default: every probe answered from `answers`). */
  hosts?: Record<string, RecordedSessionOptions>;
  answers?: RecordedSessionOptions['answers'];
  gate?: Gate;
  guard?: ChangeGuard;
  connector?: RecordedConnector;
}

async function run(play: string, o: RunSetup = {}) {
  const inventory = loadInventory(files(INVENTORY, 'inv.yml'));
  const playbook = loadPlaybook(files(play, 'play.yml'));
  const connector = o.connector ?? new RecordedConnector((host) => new RecordedSession({ answers: o.answers, ...o.hosts?.[host.name] }));
  const reporter = new MemoryReporter();
  const res = await runPlaybook({
    inventory,
    playbook,
    limit: o.limit ?? 'web-01',
    check: o.check ?? false,
    tags: o.tags,
    skipTags: o.skipTags,
    gate: o.gate,
    guard: o.guard,
    connector,
    reporter,
  });
  const session = (h = 'web-01') => connector.sessions.get(h)!;
  const results = (h = 'web-01') => reporter.events.filter((e): e is Extract<RunEvent, { kind: 'task-result' }> => e.kind === 'task-result' && e.host === h);
  const statuses = (h = 'web-01') => results(h).map((e) => `${e.handler ? 'handler ' : ''}${e.task}: ${e.status}`);
  return { res, connector, session, events: reporter.events, results, statuses };
}

/** Commands that are not provision's own bookkeeping (pending handlers). */
const taskCommands = (s: RecordedSession) => s.ran.filter((c) => !c.includes(PENDING_HANDLERS_FILE));

const STAMP_PLAY = `
- name: p
  hosts: all
  tasks:
    - name: stamp
      command: { cmd: make-stamp, creates: /srv/stamp }
      notify: reload
    - name: site directory
      file: { path: /srv/site, state: directory, mode: "0755" }
  handlers:
    - name: reload
      command: { cmd: reload-it }
`;

describe('check mode and no-change runs', () => {
  it('--check runs no command: it reads the state in one batch, predicts every change (handler too), changes nothing', async () => {
    const { res, session, statuses } = await run(STAMP_PLAY, { check: true, answers: [['exists:/srv/stamp', missing], ...fileProbeResults('/srv/site', 'absent')] });
    expect(session().ran).toEqual([]);
    expect(session().reads).toEqual([['exists:/srv/stamp', 'file:s:/srv/site']]);
    expect(statuses()).toEqual(['stamp: changed', 'site directory: changed', 'handler reload: changed']);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('a host that already matches: every task ok (not changed), no command, exit 0, one read', async () => {
    const { res, session, statuses } = await run(STAMP_PLAY, { answers: [['exists:/srv/stamp', present], ...fileProbeResults('/srv/site', { type: 'directory', mode: '755' })] });
    expect(statuses()).toEqual(['stamp: ok', 'site directory: ok']);
    expect(session().ran).toEqual([]);
    expect(session().reads).toHaveLength(1);
    expect(res.hosts['web-01']!.counts).toMatchObject({ ok: 2, changed: 0 });
    expect(exitCodeOf(res)).toBe(0);
  });
});

describe('handlers', () => {
  const play = `
- name: p
  hosts: all
  tasks:
    - { name: one, command: { cmd: do-one, creates: /one }, notify: reload }
    - { name: two, command: { cmd: do-two, creates: /two }, notify: reload }
    - { name: three, command: { cmd: do-three, creates: /three }, notify: restart }
  handlers:
    - { name: reload, command: { cmd: reload-it } }
    - { name: restart, command: { cmd: restart-it } }
`;

  it('run only when notified, once however many tasks notified them, after the tasks', async () => {
    const { session, statuses } = await run(play, { answers: { 'exists:/one': missing, 'exists:/two': missing, 'exists:/three': present } });
    expect(taskCommands(session())).toEqual(['do-one', 'do-two', 'reload-it']);
    expect(statuses()).toEqual(['one: changed', 'two: changed', 'three: ok', 'handler reload: changed']);
  });

  it('pending handlers are recorded on the host before the notifying task runs, and cleared after the handler ran', async () => {
    const { session } = await run(play, { answers: { 'exists:/one': missing, 'exists:/two': present, 'exists:/three': present } });
    const s = session();
    expect(s.ran).toEqual([`mkdir -p /var/lib/provision && cat >> ${PENDING_HANDLERS_FILE}`, 'do-one', 'reload-it', expect.stringContaining(`grep -vxF -f /dev/stdin ${PENDING_HANDLERS_FILE}`)]);
    expect(s.stdins[0]).toBe('reload\n');
    expect(s.stdins[3]).toBe('reload\n');
  });

  it('a failure after the notification leaves the handler recorded (not run, not cleared) for the next run', async () => {
    const { session, res } = await run(play, {
      hosts: { 'web-01': { answers: { 'exists:/one': missing, 'exists:/two': missing, 'exists:/three': present }, respond: (c) => (c === 'do-two' ? { stdout: '', stderr: 'disk full', code: 1 } : undefined) } },
    });
    expect(session().ran).toEqual([`mkdir -p /var/lib/provision && cat >> ${PENDING_HANDLERS_FILE}`, 'do-one', 'do-two']);
    expect(res.hosts['web-01']!.failed).toBe(true);
  });

  it('a handler notified in an earlier play runs at the end of the play that defines it, in a dry run too (the mysql role owns the database CA bundle and restarts the app of a later play)', async () => {
    const plays = `
- name: first
  hosts: all
  tasks:
    - { name: write, command: { cmd: do-write, creates: /w }, notify: restart }
- name: second
  hosts: all
  tasks:
    - { name: other, command: { cmd: do-other, creates: /o } }
  handlers:
    - { name: restart, command: { cmd: restart-it } }
`;
    const answers = { 'exists:/w': missing, 'exists:/o': present };
    const real = await run(plays, { answers });
    expect(taskCommands(real.session())).toEqual(['do-write', 'restart-it']);
    expect(real.statuses()).toEqual(['write: changed', 'other: ok', 'handler restart: changed']);
    expect((await run(plays, { answers, check: true })).statuses()).toEqual(['write: changed', 'other: ok', 'handler restart: changed']);
  });

  it('a handler owed by an earlier run (pending on the host) runs though nothing notified it, and is cleared', async () => {
    const facts: Facts = { ...debianFacts(), pendingHandlers: ['restart'] };
    const { session } = await run(play, { hosts: { 'web-01': { facts, answers: { 'exists:/one': present, 'exists:/two': present, 'exists:/three': present } } } });
    expect(session().ran).toEqual(['restart-it', expect.stringContaining(`grep -vxF -f /dev/stdin ${PENDING_HANDLERS_FILE}`)]);
    expect(session().stdins[1]).toBe('restart\n');
  });
});

describe('selection: --tags, --skip-tags, when', () => {
  const play = `
- name: p
  hosts: all
  vars: { off: false }
  tasks:
    - { name: web, command: { cmd: do-web }, tags: [web] }
    - { name: db, command: { cmd: do-db }, tags: [db] }
    - { name: always, command: { cmd: do-always }, tags: [always] }
    - { name: untagged, command: { cmd: do-untagged } }
    - { name: not now, command: { cmd: do-not-now }, when: "off" }
`;

  it('--tags runs the tagged tasks and those tagged always (the others are not even reported)', async () => {
    const { session, statuses } = await run(play, { tags: ['web'] });
    expect(session().ran).toEqual(['do-web', 'do-always']);
    expect(statuses()).toEqual(['web: changed', 'always: changed']);
  });

  it('--skip-tags runs everything but the skipped', async () => {
    const { session } = await run(play, { skipTags: ['db'] });
    expect(session().ran).toEqual(['do-web', 'do-always', 'do-untagged']);
  });

  it('without either, every task whose when holds; when: false is reported skipped', async () => {
    const { session, statuses } = await run(play);
    expect(session().ran).toEqual(['do-web', 'do-db', 'do-always', 'do-untagged']);
    expect(statuses()).toEqual(['web: changed', 'db: changed', 'always: changed', 'untagged: changed', 'not now: skipped']);
  });
});

describe('failures', () => {
  const play = `
- name: p
  hosts: all
  tasks:
    - { name: first, command: { cmd: step-1 } }
    - { name: second, command: { cmd: step-2 } }
`;

  it('a failed task stops its host, not the others; the run exits 1', async () => {
    const { res, session, statuses } = await run(play, {
      limit: 'all',
      hosts: { 'web-01': { respond: (c) => (c === 'step-1' ? { stdout: '', stderr: 'no', code: 3 } : undefined) } },
    });
    expect(session('web-01').ran).toEqual(['step-1']);
    expect(session('web-02').ran).toEqual(['step-1', 'step-2']);
    expect(statuses('web-01')).toEqual(['first: failed']);
    expect(res.hosts['web-01']).toMatchObject({ failed: true, counts: { failed: 1 } });
    expect(res.hosts['web-02']).toMatchObject({ failed: false, counts: { changed: 2 } });
    expect(exitCodeOf(res)).toBe(1);
  });

  it('a play that cannot be expanded for one host fails that host, once, when the play runs; the others go on', async () => {
    const { res, session, results } = await run(
      `
- name: p
  hosts: all
  tasks:
    - { name: flagged, command: { cmd: do-it }, when: flag }
`,
      { limit: 'all' },
    );
    expect(session('web-01').ran).toEqual([]);
    expect(results('web-01')).toMatchObject([{ task: 'expand play "p"', status: 'failed', msg: expect.stringContaining('var "flag" is not defined') }]);
    expect(session('web-02').ran).toEqual(['do-it']);
    expect(res.hosts['web-01']!.counts.failed).toBe(1);
  });

  it('an unreachable host is an outcome of its own (exit 3), the others run', async () => {
    const connector = new RecordedConnector(undefined, { 'web-02': new ConnectionError('web-02: connection refused', 'socket') });
    const { res, session } = await run(`- { name: p, hosts: all, tasks: [ { name: t, command: { cmd: x } } ] }\n`, { limit: 'all', connector });
    expect(session('web-01').ran).toEqual(['x']);
    expect(res.hosts['web-02']).toMatchObject({ unreachable: 'web-02: connection refused', counts: { unreachable: 1 } });
    expect(exitCodeOf(res)).toBe(3);
  });
});

describe('the state read is linear in a play: each task bound once, its probes built once', () => {
  let parses = 0;
  let probeBuilds = 0;
  registerModule({
    name: 'counted',
    schema: z.object({ n: z.number(), change: z.boolean().default(false) }).refine(() => ++parses > 0),
    probes: (p) => {
      probeBuilds++;
      return [probe(`counted:${p.n}`, 'true', (r) => r?.code)];
    },
    plan: (p) => (p.change ? { changes: [{ kind: 'other', target: String(p.n), action: 'touch' }], commands: [{ kind: 'shell', cmd: `touch-${p.n}` }] } : { changes: [], commands: [] }),
  });
  const play = (n: number, changeAt?: number) =>
    `- name: p\n  hosts: all\n  tasks:\n${Array.from({ length: n }, (_, i) => `    - { name: t${i}, counted: { n: ${i}${i === changeAt ? ', change: true' : ''} } }`).join('\n')}\n`;
  const answers = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`counted:${i}`, present]));

  it.each([50, 400])('%i tasks, no change: params parsed twice per task (load, bind), probes built once, ONE read', async (n) => {
    parses = probeBuilds = 0;
    const { session, res } = await run(play(n), { answers: answers(n) });
    expect(res.hosts['web-01']!.counts.ok).toBe(n);
    expect(parses).toBe(2 * n);
    expect(probeBuilds).toBe(n);
    expect(session().reads).toHaveLength(1);
  });

  it('a change in the middle: one more read, of the tasks after it only', async () => {
    const { session } = await run(play(10, 4), { answers: answers(10) });
    expect(session().ran).toEqual(['touch-4']);
    expect(session().reads).toEqual([Array.from({ length: 10 }, (_, i) => `counted:${i}`), Array.from({ length: 5 }, (_, i) => `counted:${i + 5}`)]);
  });
});

describe("a task's note is the one its plan holds when the task is reported", () => {
  // A replica's seed says what it copied in its note, which its verify step writes after the commands ran.
  registerModule({
    name: 'noted_after',
    schema: z.object({ n: z.number() }),
    probes: () => [],
    plan: () => {
      const plan: Plan = { changes: [{ kind: 'other', target: 'x', action: 'touch' }], commands: [{ kind: 'shell', cmd: 'touch-x' }], note: 'planned' };
      plan.verify = async () => {
        plan.note = 'verified after the commands';
      };
      return plan;
    },
  });

  it('a note set by verify is the one reported', async () => {
    const { events } = await run(`- { name: p, hosts: all, tasks: [ { name: t, noted_after: { n: 1 } } ] }\n`);
    const result = events.find((e) => e.kind === 'task-result' && e.task === 't') as { note?: string } | undefined;
    expect(result?.note).toBe('verified after the commands');
  });
});

/** True when v holds nothing but plain objects, arrays and primitives (no class instance, no Map). */
function plainData(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return typeof v !== 'function';
  if (Array.isArray(v)) return v.every(plainData);
  return Object.getPrototypeOf(v) === Object.prototype && Object.values(v).every(plainData);
}

describe('the result is data', () => {
  it('RunResult holds plain data only: counts, outcomes, observed fingerprints, facts fingerprint, why a host stopped', async () => {
    const { res } = await run(STAMP_PLAY, { check: true, limit: 'all', answers: [['exists:/srv/stamp', missing], ...fileProbeResults('/srv/site', 'absent')] });
    expect(plainData(res)).toBe(true);
    const h = res.hosts['web-01']!;
    expect(Object.keys(h.observed)).toEqual(['exists:/srv/stamp', 'file:s:/srv/site']);
    expect(h.factsFingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(h.outcomes.map((o) => [o.task, o.status, o.handler])).toEqual([
      ['stamp', 'changed', false],
      ['site directory', 'changed', false],
      ['reload', 'changed', true],
    ]);
  });
});

describe('apply: one connection per host, a gate between the check and the real run', () => {
  const answers: Array<[string, ProbeResult]> = [['exists:/srv/stamp', missing], ...fileProbeResults('/srv/site', { type: 'directory', mode: '755' })];

  it('the check is silent and runs no command; the gate sees every host; the real run uses the same connection', async () => {
    const seen: Array<[string, string[]]> = [];
    const gate: Gate = (host, check, all) => {
      seen.push([host, Object.keys(all)]);
      expect(check.counts.changed).toBe(2); // stamp and its handler, predicted
      return host === 'web-01';
    };
    const { res, connector, session, events } = await run(STAMP_PLAY, { limit: 'all', answers, gate });
    expect(connector.opened.sort()).toEqual(['web-01', 'web-02']);
    expect(seen.sort()).toEqual([
      ['web-01', ['web-01', 'web-02']],
      ['web-02', ['web-01', 'web-02']],
    ]);
    expect(taskCommands(session('web-01'))).toEqual(['make-stamp', 'reload-it']);
    expect(session('web-02').ran).toEqual([]);
    // Facts were read once per host: the real run goes on with the check's. The state is read by the
    // check, again by the real run (what its guard compares), and once more after its first change.
    expect(session('web-01').factsReads).toBe(1);
    expect(session('web-01').reads).toEqual([['exists:/srv/stamp', 'file:s:/srv/site'], ['exists:/srv/stamp', 'file:s:/srv/site'], ['file:s:/srv/site']]);
    expect(Object.keys(res.checks!)).toEqual(['web-01', 'web-02']);
    expect(Object.keys(res.hosts)).toEqual(['web-01']);
    // What is shown is the real run of the hosts let through, from its run-start.
    expect(events[0]).toMatchObject({ kind: 'run-start', hosts: ['web-01'], check: false });
    expect(events.filter((e) => e.kind === 'task-result').map((e) => (e as { host: string }).host)).toEqual(['web-01', 'web-01', 'web-01']);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('a gate that lets no host through (--all-or-nothing with one drifted): nothing runs, nothing is shown', async () => {
    const { res, session, events } = await run(STAMP_PLAY, { limit: 'all', answers, gate: () => false });
    expect(session('web-01').ran).toEqual([]);
    expect(session('web-02').ran).toEqual([]);
    expect(res.hosts).toEqual({});
    expect(events).toEqual([]);
  });

  it('the real run reads the state again and its guard refuses a host that changed after the check: no command, exit 5', async () => {
    const before = await run(STAMP_PLAY, { check: true, answers });
    const plan = planFromRun(before.res, { inventory: 'inv.yml', playbook: 'play.yml' });
    const connector = new RecordedConnector(() => new RecordedSession({ answers }));
    const { res, session } = await run(STAMP_PLAY, {
      connector,
      guard: new PlanGuard(plan),
      gate: (h) => {
        // The host changes between the check and the real run.
        connector.sessions.get(h)!.answer({ 'exists:/srv/stamp': present });
        return true;
      },
    });
    expect(session().ran).toEqual([]);
    expect(res.checks!['web-01']!.counts.changed).toBe(2);
    expect(res.hosts['web-01']).toMatchObject({ refused: 'the host changed since the plan: changed since the plan: exists:/srv/stamp' });
    expect(exitCodeOf(res)).toBe(5);
  });
});

describe("a 'call' step (a stream between hosts: the replica's seed) and a task's peer", () => {
  const calls: Array<{ host: string; canSpawn: boolean }> = [];
  const peers: string[] = [];
  registerModule({
    name: 'streamed',
    schema: z.object({ from: z.string() }),
    probes: () => [probe('streamed:done', 'true', (r) => r?.code === 0)],
    plan: (p, ctx) =>
      ctx.read(probe('streamed:done', 'true', (r) => r?.code === 0))
        ? { changes: [], commands: [] }
        : {
            changes: [{ kind: 'other', target: 'copy', action: `stream from ${p.from}` }],
            commands: [
              { kind: 'shell', cmd: 'before-stream' },
              {
                kind: 'call',
                describe: `stream from ${p.from}`,
                run: async (target) => {
                  calls.push({ host: target.hostName, canSpawn: typeof target.spawn === 'function' });
                  await ctx.peer?.(p.from);
                },
              },
              { kind: 'shell', cmd: 'after-stream' },
            ],
          },
  });
  const PLAY = '- name: p\n  hosts: all\n  tasks:\n    - { name: seed, streamed: { from: web-02 } }\n';
  const peered = () =>
    new RecordedConnector(() => {
      const s = new RecordedSession({ answers: { 'streamed:done': missing } });
      return Object.assign(s, {
        spawn: async () => {
          throw new Error('not streamed in this test');
        },
        peer: async (name: string) => {
          peers.push(name);
          return {} as never;
        },
      });
    });

  it('runs in order with the commands, given its host and a way to stream; the peer comes from the session; reported as a command', async () => {
    calls.length = peers.length = 0;
    const { session, events, res } = await run(PLAY, { connector: peered() });
    expect(session().ran).toEqual(['before-stream', 'after-stream']);
    expect(calls).toEqual([{ host: 'web-01', canSpawn: true }]);
    expect(peers).toEqual(['web-02']);
    expect(events.some((e) => e.kind === 'command' && e.command === 'stream from web-02')).toBe(true);
    expect(res.hosts['web-01']!.counts.changed).toBe(1);
  });

  it('--check never runs it', async () => {
    calls.length = peers.length = 0;
    const { session, res } = await run(PLAY, { connector: peered(), check: true });
    expect(session().ran).toEqual([]);
    expect(calls).toEqual([]);
    expect(peers).toEqual([]);
    expect(res.hosts['web-01']!.counts.changed).toBe(1);
  });
});
