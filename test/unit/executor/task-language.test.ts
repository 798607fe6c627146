/**
 * The YAML task language: loop, when (expressions parsed at load time), register,
 * changed_when/failed_when, block/rescue/always, include_tasks, import_role, run_once; the dry
 * run's "unknown" for what depends on a result it cannot know; plays that match no host.
 * Hosts are recorded sessions (recorded-connection.ts): what ran, and what never did.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { exitCodeOf } from '../../../src/cli/exit-codes.js';
import { main } from '../../../src/cli/main.js';
import { loadPlaybook, runPlaybook, type RunEvent } from '../../../src/executor/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { command } from '../../../src/modules/tasks.js';
import { hostPlanOf } from '../../../src/plan/plan.js';
import { PlanGuard } from '../../../src/plan/guard.js';
import { formatEvent } from '../../../src/report/format.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { registerRole } from '../../../src/roles/index.js';
import '../../../src/roles/builtin.js';
import type { ExecResult } from '../../../src/transport/index.js';
import { PlaybookError } from '../../../src/util/errors.js';
import { PENDING_HANDLERS_FILE } from '../../../src/host-paths.js';
import { RecordedConnector, RecordedSession } from './recorded-connection.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures');
const bad = path.join(fixtures, 'bad/task-language');
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-lang-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

registerRole({
  name: 'langrole',
  description: 'a role imported by the task-language tests',
  vars: z.object({}),
  tasks: () => [command('role step', { cmd: 'role-step' })],
});

/** Two hosts nobody connects to (the connector is recorded); web-02 is in group db. */
const INVENTORY = `hosts:
  web-01: { address: 127.0.0.1, port: 1, vars: { role_name: web, users: [alice, bob] } }
  web-02: { address: 127.0.0.1, port: 1, groups: [db], vars: { role_name: db, users: [carol] } }
groups:
  empty: { vars: { nobody: here } }
`;

function file(text: string, name: string): string {
  const f = path.join(tmp, name);
  writeFileSync(f, text);
  return f;
}

interface Setup {
  check?: boolean;
  limit?: string;
  strict?: boolean;
  tags?: string[];
  /** Per host: the answer to a command (undefined: the default, where only `false` fails). */
  respond?: (host: string, cmd: string) => ExecResult | undefined;
  extraFiles?: Record<string, string>;
  /** Probe answers by key (a string is stdout with exit 0). */
  answers?: Record<string, { stdout: string; code: number }>;
}

let n = 0;
async function run(play: string, o: Setup = {}) {
  const dir = mkdtempSync(path.join(tmp, `case-${n++}-`));
  for (const [name, text] of Object.entries(o.extraFiles ?? {})) writeFileSync(path.join(dir, name), text);
  const inventory = loadInventory(file(INVENTORY, `inv-${n}.yml`));
  writeFileSync(path.join(dir, 'play.yml'), play);
  const playbook = loadPlaybook(path.join(dir, 'play.yml'));
  const connector = new RecordedConnector((host) => new RecordedSession({ answers: { 'exists:/x': { stdout: '', code: 1 }, ...o.answers }, respond: (c) => o.respond?.(host.name, c) }));
  const reporter = new MemoryReporter();
  const res = await runPlaybook({ inventory, playbook, limit: o.limit, check: o.check ?? false, strict: o.strict, tags: o.tags, connector, reporter });
  const ran = (h = 'web-01') => (connector.sessions.get(h)?.ran ?? []).filter((c) => !c.includes(PENDING_HANDLERS_FILE));
  const results = (h = 'web-01') => reporter.events.filter((e): e is Extract<RunEvent, { kind: 'task-result' }> => e.kind === 'task-result' && e.host === h);
  const statuses = (h = 'web-01') => results(h).map((e) => `${e.task}: ${e.status}${e.status === 'unknown' || e.msg?.startsWith('run_once') ? ` (${e.msg})` : ''}`);
  return { res, ran, results, statuses, events: reporter.events, connector };
}

const ok = (stdout: string, code = 0): ExecResult => ({ stdout, stderr: '', code });

describe('task language: bad input is exit 4 with file:line:col, before any connection', () => {
  const cases: Record<string, string> = {
    'when-syntax.yml': '/when-syntax.yml:6:13: [0].tasks[0].when: bad expression "facts.os.family == = \\"debian\\"": unexpected token: = (line 1, column 20 of the expression)',
    'when-two-outputs.yml': '/when-two-outputs.yml:6:13: [0].tasks[0].when: bad expression "x }}{{ y": expected comma after expression (line 1, column 1 of the expression)',
    'when-in-list.yml': '/when-in-list.yml:8:11: [0].tasks[0].when[1]: bad expression "b ==": the expression ends too early (nothing after the last operator)',
    'loop-syntax.yml': '/loop-syntax.yml:6:13: [0].tasks[0].loop: bad expression "users |": the expression ends too early (expected symbol, got right-paren)',
    'delegate-to-localhost.yml': '/delegate-to-localhost.yml:6:20: [0].tasks[0].delegate_to: delegate_to: localhost is not supported: provision runs nothing on the control machine',
    'delegate-to-template.yml': '/delegate-to-template.yml:6:20: [0].tasks[0].delegate_to: delegate_to names a host of the inventory as it is written (not a template)',
    'delegate-to-handler.yml': '/delegate-to-handler.yml:9:7: [0].handlers[0].delegate_to: not supported on a handler',
    'changed-when-not-command.yml': "/changed-when-not-command.yml:6:21: [0].tasks[0].changed_when: changed_when and failed_when are for command tasks (their result is the command's exit code and output)",
    'include-missing.yml': `/include-missing.yml:4:22: [0].tasks[0].include_tasks: included tasks ${bad}/no-such-tasks.yml: no such file`,
    'include-cycle.yml': '/include-cycle-inner.yml:3:18: [1].include_tasks: include-cycle-inner.yml includes itself (include-cycle.yml → include-cycle-inner.yml → include-cycle-inner.yml)',
    'include-bad-task.yml': '/include-bad-task-inner.yml:5:9: [1].when: bad expression "x ===": the expression ends too early (nothing after the last operator)',
    'register-name.yml': '/register-name.yml:6:17: [0].tasks[0].register: a var name (letters, digits, _) (got "my-result")',
    'rescue-without-block.yml': '/rescue-without-block.yml:6:9: [0].tasks[0].rescue: rescue and always belong to a block',
    'loop-control-without-loop.yml': '/loop-control-without-loop.yml:6:7: [0].tasks[0].loop_control: loop_control without loop',
    'import-role-unknown.yml': '/import-role-unknown.yml:4:28: [0].tasks[0].import_role.name: unknown role "ngnix"',
    'handler-loop.yml': '/handler-loop.yml:8:7: [0].handlers[0].loop: not supported on a handler',
    'import-role-when-register.yml':
      '/import-role-when-register.yml:6:13: [0].tasks[1].when: the when of import_role "common" cannot read the registered result "probed" (not supported yet): put the condition on the role\'s or handler\'s tasks, or on a task that notifies it',
  };

  it('every fixture has its message (and every message a fixture)', () => {
    const files = readdirSync(bad).filter((f) => !f.includes('-inner'));
    expect(files.sort()).toEqual(Object.keys(cases).sort());
  });

  it.each(Object.entries(cases))('%s', (name, expected) => {
    const load = () => loadPlaybook(path.join(bad, name));
    expect(load).toThrow(PlaybookError);
    try {
      load();
    } catch (err) {
      expect((err as Error).message).toBe(`${expected.startsWith('/') ? bad : ''}${expected}`);
    }
  });

  it('the CLI exits 4 on a bad expression and contacts no host (the inventory names a port nobody listens on)', async () => {
    const inv = file(INVENTORY, 'cli-inv.yml');
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errors.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await main(['-i', inv, '-p', path.join(bad, 'when-syntax.yml')])).toBe(4);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join('')).toContain('when-syntax.yml:6:13: [0].tasks[0].when: bad expression');
    expect(errors.join('')).not.toMatch(/UNREACHABLE|connect/i);
  });
});

describe('loop', () => {
  it('a list literal: one line per item, the item in params; loop_control.label and loop_var', async () => {
    const { ran, statuses } = await run(`
- name: p
  hosts: all
  tasks:
    - name: greet
      command: { cmd: "echo {{ item }}" }
      loop: [one, "two {{ role_name }}"]
    - name: users
      command: { cmd: "adduser {{ u.name }}" }
      loop: [{ name: ann, uid: 1 }, { name: ben, uid: 2 }]
      loop_control: { loop_var: u, label: "{{ u.name }}" }
`);
    expect(ran()).toEqual(["echo one", "echo 'two web'", 'adduser ann', 'adduser ben']);
    expect(statuses()).toEqual(['greet (one): changed', 'greet (two web): changed', 'users (ann): changed', 'users (ben): changed']);
  });

  it('an expression or a var giving the list, per host; when is evaluated per item', async () => {
    const { ran } = await run(`
- name: p
  hosts: all
  tasks:
    - name: each user
      command: { cmd: "id {{ item }}" }
      loop: "{{ users }}"
      when: item != "bob"
`, { limit: 'all' });
    expect(ran('web-01')).toEqual(['id alice']);
    expect(ran('web-02')).toEqual(['id carol']);
  });

  it('a loop over something that is not a list fails the host with where it was written', async () => {
    const { results } = await run(`
- name: p
  hosts: all
  tasks:
    - { name: each, command: { cmd: "echo {{ item }}" }, loop: role_name }
`);
    expect(results()[0]).toMatchObject({ status: 'failed', msg: expect.stringMatching(/play\.yml:5:\d+: \[0\]\.tasks\[0\]\.loop: task "each": loop: expected a list, got string/) });
  });
});

describe('when', () => {
  it('an expression over vars and facts; a list is AND; the bare forms still work', async () => {
    const { ran, statuses } = await run(`
- name: p
  hosts: all
  vars: { off: false, level: 3 }
  tasks:
    - { name: debian, command: { cmd: on-debian }, when: facts.os.family == "debian" }
    - { name: redhat, command: { cmd: on-redhat }, when: 'facts.os.family == "redhat"' }
    - { name: both, command: { cmd: both }, when: ["level > 2", "role_name in ['web', 'db']"] }
    - { name: one fails, command: { cmd: never }, when: ["level > 2", "level > 5"] }
    - { name: bare, command: { cmd: never-off }, when: "off" }
    - { name: not bare, command: { cmd: not-off }, when: not off }
    - { name: bool, command: { cmd: yes-bool }, when: '"yes" | bool' }
`);
    expect(ran()).toEqual(['on-debian', 'both', 'not-off', 'yes-bool']);
    expect(statuses()).toContain('redhat: skipped');
    expect(statuses()).toContain('one fails: skipped');
  });

  it('a var nobody defined is an error of that host (not a silent false), unless the expression tests it', async () => {
    const { results } = await run(`
- name: p
  hosts: all
  tasks:
    - { name: guarded, command: { cmd: guarded }, when: nothere is defined }
    - { name: defaulted, command: { cmd: defaulted }, when: nothere | default(true) }
    - { name: unguarded, command: { cmd: x }, when: nothere == 1 }
`);
    expect(results()[0]).toMatchObject({ task: 'expand play "p"', status: 'failed', msg: expect.stringContaining('[0].tasks[2].when: task "unguarded": var "nothere" is not defined') });
  });
});

describe('register, changed_when, failed_when', () => {
  const respond = (_h: string, c: string) => (c === 'cat /etc/flag' ? ok('on\n') : c === 'check-it' ? ok('', 3) : c === 'say-same' ? ok('unchanged') : undefined);

  it('a result is usable in later when, templates and changed_when / failed_when', async () => {
    const { ran, statuses, res } = await run(`
- name: p
  hosts: all
  tasks:
    - name: read flag
      command: { cmd: cat /etc/flag }
      register: flag
      changed_when: false
    - { name: flag on, command: { cmd: "echo {{ flag.stdout }} {{ flag.rc }}" }, when: flag.stdout == "on" }
    - { name: flag off, command: { cmd: never }, when: flag.stdout == "off" }
    - name: check
      command: { cmd: check-it }
      register: checked
      failed_when: checked.rc not in [0, 3]
      changed_when: false
    - { name: after check, command: { cmd: "after {{ checked.rc }}" }, when: checked.rc == 3 and not checked.failed }
    - name: idempotent
      command: { cmd: say-same }
      register: same
      changed_when: "'changed' in same.stdout and 'unchanged' not in same.stdout"
`, { respond });
    expect(ran()).toEqual(['cat /etc/flag', 'echo on 0', 'check-it', 'after 3', 'say-same']);
    expect(statuses()).toEqual(['read flag: ok', 'flag on: changed', 'flag off: skipped', 'check: ok', 'after check: changed', 'idempotent: ok']);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('failed_when that holds fails the task (and the host) even when the command exited 0', async () => {
    const { ran, results, res } = await run(`
- name: p
  hosts: all
  tasks:
    - { name: read flag, command: { cmd: cat /etc/flag }, register: flag, failed_when: "'on' in flag.stdout" }
    - { name: never, command: { cmd: never } }
`, { respond });
    expect(ran()).toEqual(['cat /etc/flag']);
    expect(results()[0]).toMatchObject({ status: 'failed', msg: expect.stringContaining("failed_when holds: 'on' in flag.stdout") });
    expect(exitCodeOf(res)).toBe(1);
  });

  it('a loop registers each item in results, and what they add up to', async () => {
    const { ran } = await run(`
- name: p
  hosts: all
  tasks:
    - { name: each, command: { cmd: "echo {{ item }}" }, loop: [a, b], register: out }
    - { name: summary, command: { cmd: "n={{ out.results | length }} changed={{ out.changed }} first={{ out.results[0].rc }}" } }
`);
    expect(ran()).toEqual(['echo a', 'echo b', "n=2 changed=true first=0"]);
  });

  it('a skipped task registers skipped', async () => {
    const { ran } = await run(`
- name: p
  hosts: all
  tasks:
    - { name: maybe, command: { cmd: maybe }, when: false, register: m }
    - { name: then, command: { cmd: "skipped={{ m.skipped }}" } }
`);
    expect(ran()).toEqual(['skipped=true']);
  });
});

describe('block, rescue, always', () => {
  it('a failure in a block runs its rescue then its always; the host goes on, the run does not exit 1', async () => {
    const { ran, statuses, res } = await run(`
- name: p
  hosts: all
  tasks:
    - block:
        - { name: first, command: { cmd: step-1 } }
        - { name: breaks, command: { cmd: "false" } }
        - { name: never, command: { cmd: never } }
      rescue:
        - { name: repair, command: { cmd: repair } }
      always:
        - { name: cleanup, command: { cmd: cleanup } }
    - { name: after, command: { cmd: after } }
`);
    expect(ran()).toEqual(['step-1', 'false', 'repair', 'cleanup', 'after']);
    expect(statuses()).toEqual(['first: changed', 'breaks: ignored', 'repair: changed', 'cleanup: changed', 'after: changed']);
    expect(res.hosts['web-01']!.failed).toBe(false);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('without rescue, always still runs, then the host stops failed', async () => {
    const { ran, res } = await run(`
- name: p
  hosts: all
  tasks:
    - block:
        - { name: breaks, command: { cmd: "false" } }
      always:
        - { name: cleanup, command: { cmd: cleanup } }
    - { name: never, command: { cmd: never } }
`);
    expect(ran()).toEqual(['false', 'cleanup']);
    expect(res.hosts['web-01']!.failed).toBe(true);
    expect(exitCodeOf(res)).toBe(1);
  });

  it("a nested block's failure reaches the outer rescue after the inner always; a failing rescue fails the host", async () => {
    const { ran, res } = await run(`
- name: p
  hosts: all
  tasks:
    - block:
        - block:
            - { name: breaks, command: { cmd: "false" } }
          always:
            - { name: inner always, command: { cmd: inner-always } }
      rescue:
        - { name: rescue breaks too, command: { cmd: "false" } }
        - { name: never, command: { cmd: never } }
      always:
        - { name: outer always, command: { cmd: outer-always } }
`);
    expect(ran()).toEqual(['false', 'inner-always', 'false', 'outer-always']);
    expect(res.hosts['web-01']!.failed).toBe(true);
  });

  it("a block's when and tags apply to each of its tasks", async () => {
    const play = `
- name: p
  hosts: all
  tasks:
    - block:
        - { name: a, command: { cmd: a } }
        - { name: b, command: { cmd: b }, when: role_name == "web" }
      when: facts.os.family == "debian"
      tags: [web]
    - block:
        - { name: c, command: { cmd: c } }
      when: false
    - { name: d, command: { cmd: d } }
`;
    expect((await run(play, { limit: 'all' })).ran('web-02')).toEqual(['a', 'd']);
    expect((await run(play, { tags: ['web'] })).ran()).toEqual(['a', 'b']);
  });
});

describe('include_tasks and import_role', () => {
  it('include_tasks reads a file beside the playbook at load time, with vars; import_role runs a role there', async () => {
    const { ran, statuses } = await run(
      `
- name: p
  hosts: all
  tasks:
    - { name: before, command: { cmd: before } }
    - include_tasks: inc.yml
      vars: { greeting: hello }
    - import_role: { name: langrole }
      when: role_name == "web"
`,
      { extraFiles: { 'inc.yml': '- { name: included, command: { cmd: "say {{ greeting }} {{ role_name }}" } }\n' } },
    );
    expect(ran()).toEqual(['before', 'say hello web', 'role-step']);
    expect(statuses()).toEqual(['before: changed', 'included: changed', 'role step: changed']);
  });
});

describe('run_once', () => {
  it('runs on the first host only; its result is registered on every host of the play', async () => {
    const respond = (h: string, c: string) => (c === 'make-token' ? ok(`token-from-${h}`) : undefined);
    const { ran, statuses } = await run(
      `
- name: p
  hosts: all
  tasks:
    - { name: token, command: { cmd: make-token }, run_once: true, register: tok, changed_when: false }
    - { name: use, command: { cmd: "use {{ tok.stdout }}" } }
`,
      { limit: 'all', respond },
    );
    expect(ran('web-01')).toEqual(['make-token', 'use token-from-web-01']);
    expect(ran('web-02')).toEqual(['use token-from-web-01']);
    expect(statuses('web-02')[0]).toBe('token: skipped (run_once: ran on web-01)');
  });
});

describe('delegate_to', () => {
  it("runs the task on the named host's connection with the current host's vars; with run_once, once", async () => {
    const { ran } = await run(
      `
- name: p
  hosts: web-01
  tasks:
    - { name: here, command: { cmd: "here {{ role_name }}" } }
    - { name: there, command: { cmd: "there {{ role_name }} {{ inventory_hostname }}" }, delegate_to: web-02, register: out }
    - { name: after, command: { cmd: "after {{ out.rc }}" } }
`,
    );
    expect(ran('web-01')).toEqual(['here web', 'after 0']);
    // web-02 is not in the play: it is connected to for the delegated task only.
    expect(ran('web-02')).toEqual(['there web web-01']);
    const once = await run(
      `
- name: p
  hosts: all
  tasks:
    - { name: there once, command: { cmd: "once {{ inventory_hostname }}" }, delegate_to: web-02, run_once: true }
`,
      { limit: 'all' },
    );
    expect([...once.ran('web-01'), ...once.ran('web-02')].filter((c) => c.startsWith('once'))).toHaveLength(1);
  });

  it('a host the inventory does not have is exit 4 with file:line:col, before any connection', async () => {
    const inv = file(INVENTORY, 'delegate-inv.yml');
    const play = file('- name: p\n  hosts: all\n  tasks:\n    - name: t\n      command: { cmd: "true" }\n      delegate_to: db-01\n', 'delegate-unknown.yml');
    const errors: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errors.push(String(s)), true)) as typeof process.stderr.write;
    try {
      expect(await main(['-i', inv, '-p', play])).toBe(4);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join('').split('\n')[0]).toBe(`provision: error: ${play}:6:20: [0].tasks[0].delegate_to: delegate_to: "db-01" is not a host of inventory delegate-inv`);
    expect(errors.join('')).not.toMatch(/UNREACHABLE|connect/i);
  });
});

describe('environment and no_log on a task', () => {
  it("environment reaches the command on its stdin, never its command line; no_log hides the task's command, output, items and message in every event", async () => {
    const respond = (_h: string, c: string) => (c.includes('leak-it') ? ok('s3cret-output') : c.includes('fail-it') ? { stdout: '', stderr: 'fail-detail-xyz', code: 3 } : undefined);
    const { ran, events, connector, statuses } = await run(
      `
- name: p
  hosts: web-01
  tasks:
    - { name: with env, command: { cmd: "use-env" }, environment: { TOKEN: "tok-{{ role_name }}" } }
    - { name: quiet, command: { cmd: "leak-it {{ item }}" }, loop: [hidden-item], no_log: true, register: q }
    - { name: quiet failure, command: { cmd: "fail-it" }, no_log: true, ignore_errors: true }
    - { name: uses it, command: { cmd: "got {{ q.results[0].stdout }}" } }
`,
      { respond },
    );
    const session = connector.sessions.get('web-01')!;
    const at = session.ran.findIndex((c) => c.includes('use-env'));
    expect(session.ran[at]).not.toContain('tok-web');
    expect(String(session.stdins[at])).toContain(`TOKEN=${Buffer.from('tok-web').toString('base64')}`);
    // The result is still registered: only what is shown is hidden.
    expect(ran()).toContain('got s3cret-output');
    // Every event but those of the task that prints the registered output on purpose (and the recap: the run's file names).
    const quietEvents = events.filter((e) => e.kind !== 'recap' && (!('task' in e) || !String(e.task).startsWith('uses it')));
    const shown = JSON.stringify(quietEvents);
    for (const secret of ['s3cret-output', 'hidden-item', 'leak-it', 'fail-detail-xyz']) expect(shown).not.toContain(secret);
    expect(statuses()).toEqual(['with env: changed', 'quiet (item hidden: no_log): changed', 'quiet failure: ignored', 'uses it: changed']);
    const lines = quietEvents.flatMap((e) => formatEvent(e, { diff: true, verbose: 2, color: false }));
    expect(lines.join('\n')).not.toMatch(/s3cret-output|hidden-item|leak-it|fail-detail-xyz/);
  });

  it('environment on a module that runs no command is exit 4 naming where (become on a task: become-user.test.ts)', () => {
    const dir = mkdtempSync(path.join(tmp, 'become-'));
    writeFileSync(path.join(dir, 'e.yml'), '- name: p\n  hosts: all\n  tasks:\n    - name: t\n      file: { path: /x, state: directory }\n      environment: { A: b }\n');
    expect(() => loadPlaybook(path.join(dir, 'e.yml'))).toThrow(`${path.join(dir, 'e.yml')}:6:7: [0].tasks[0].environment: environment is for command and shell tasks (file runs no command of yours)`);
  });
});

describe('check mode is honest about what it cannot know', () => {
  const play = `
- name: p
  hosts: all
  tasks:
    - { name: known, command: { cmd: known, creates: /x } }
    - { name: migrate, command: { cmd: migrate }, register: mig }
    - { name: after migrate, command: { cmd: "restart" }, when: mig.rc == 0 }
    - { name: loop on it, command: { cmd: "echo {{ item }}" }, loop: "{{ mig.stdout_lines }}", register: each }
    - { name: depends on loop, command: { cmd: "x" }, when: each.changed }
    - { name: own output, command: { cmd: probe-it }, register: own, changed_when: "'new' in own.stdout" }
    - { name: independent, command: { cmd: independent }, when: role_name == "web" }
`;

  it('--check: a task whose when or loop reads a result a dry run cannot know is "unknown: depends on NAME", never guessed; exit 2', async () => {
    const { ran, statuses, res, results } = await run(play, { check: true, respond: () => ok('') });
    expect(ran()).toEqual([]);
    expect(statuses()).toEqual([
      'known: changed',
      'migrate: changed',
      'after migrate: unknown (depends on mig)',
      'loop on it: unknown (depends on mig)',
      'depends on loop: unknown (depends on each)',
      'own output: unknown (depends on own)',
      'independent: changed',
    ]);
    expect(res.hosts['web-01']!.counts).toMatchObject({ unknown: 4, changed: 3 });
    expect(exitCodeOf(res)).toBe(2);
    const line = formatEvent(results()[2]!, { diff: false, verbose: 0, color: false });
    expect(line).toEqual(['web-01: unknown: after migrate: depends on mig (a dry run cannot know it)']);
  });

  it('the plan carries the unknown tasks, and apply refuses to do what the plan could not show', async () => {
    const { res } = await run(play, { check: true });
    const plan = hostPlanOf(res.hosts['web-01']!);
    expect(plan.tasks.filter((t) => t.unknown).map((t) => [t.task, t.unknown])).toEqual([
      ['after migrate', 'depends on mig'],
      ['loop on it', 'depends on mig'],
      ['depends on loop', 'depends on each'],
      ['own output', 'depends on own'],
    ]);
    const guard = new PlanGuard({ version: 2, tool: 't', created: '', planKey: '', inventory: '', playbook: '', hosts: { 'web-01': plan } });
    expect(guard.checkChange('web-01', { task: 'known', module: 'command', handler: false, changes: plan.tasks[0]!.changes })).toBeUndefined();
    expect(guard.checkChange('web-01', { task: 'migrate', module: 'command', handler: false, changes: plan.tasks[1]!.changes })).toBeUndefined();
    expect(guard.checkChange('web-01', { task: 'after migrate', module: 'command', handler: false, changes: [{ kind: 'command', target: 'restart', action: 'run' }] })).toMatch(
      /^the plan could not know what this task does \(depends on mig\)/,
    );
  });

  it('--check: a block whose command would run may fail: its rescue is unknown, not guessed either way', async () => {
    const { statuses, ran } = await run(
      `
- name: p
  hosts: all
  tasks:
    - block:
        - { name: try, command: { cmd: try-it }, changed_when: false }
      rescue:
        - { name: fallback, command: { cmd: fallback }, register: fb }
      always:
        - { name: stamp, command: { cmd: stamp } }
    - { name: after fallback, command: { cmd: after }, when: fb is defined and not fb.skipped }
`,
      { check: true },
    );
    expect(ran()).toEqual([]);
    expect(statuses()).toEqual([
      'try: ok',
      "fallback: unknown (depends on try (the block's rescue runs if it fails))",
      'stamp: changed',
      'after fallback: unknown (depends on fb)',
    ]);
  });

  it('a result that is known in a dry run (the task would not change) is used, not marked unknown', async () => {
    const { statuses } = await run(
      `
- name: p
  hosts: all
  tasks:
    - { name: guarded, command: { cmd: guarded, creates: /etc/hostname }, register: g }
    - { name: after, command: { cmd: after }, when: not g.changed }
`,
      { check: true, answers: { 'exists:/etc/hostname': { stdout: '', code: 0 } } },
    );
    expect(statuses()).toEqual(['guarded: ok', 'after: changed']);
  });
});

describe('plays that match no host', () => {
  const play = `
- name: monitoring
  hosts: monitoring
  tasks:
    - { name: collector, command: { cmd: collector } }
- name: nobody
  hosts: empty
  tasks:
    - { name: n, command: { cmd: n } }
- name: web
  hosts: all
  tasks:
    - { name: w, command: { cmd: w } }
`;

  it('are skipped with one line each (no --limit error when no --limit was given); a group the inventory lacks is a warning naming the play', async () => {
    const { ran, events, res } = await run(play, {});
    expect(ran()).toEqual(['w']);
    const skipped = events.filter((e) => e.kind === 'play-skipped');
    expect(skipped).toEqual([
      { kind: 'play-skipped', play: 'monitoring', reason: 'no host matches "monitoring"' },
      { kind: 'play-skipped', play: 'nobody', reason: 'no host matches "empty"' },
    ]);
    expect(formatEvent(skipped[0]!, { diff: false, verbose: 0, color: false })).toEqual(['PLAY monitoring: skipped: no host matches "monitoring"']);
    const warnings = events.filter((e) => e.kind === 'warning').map((e) => (e as { msg: string }).msg).filter((m) => m.includes('play "'));
    expect(warnings).toEqual([expect.stringMatching(/play\.yml:3:10: play "monitoring": hosts: "monitoring" is neither a host nor a group of inventory/)]);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('with --strict the misspelt group is an error before any connection', async () => {
    await expect(run(play, { strict: true })).rejects.toThrow(/play "monitoring": hosts: "monitoring" is neither a host nor a group/);
  });

  it('a play whose hosts --limit leaves out is skipped with a line that says so', async () => {
    const { events } = await run(`- { name: dbs, hosts: db, tasks: [ { name: t, command: { cmd: t } } ] }\n`, { limit: 'web-01' });
    expect(events.filter((e) => e.kind === 'play-skipped')).toEqual([{ kind: 'play-skipped', play: 'dbs', reason: 'none of its hosts (db) is selected by --limit' }]);
  });

  it('"web:!monitoring" selects web; "web:&monitoring" selects nothing', async () => {
    expect((await run(`- { name: p, hosts: "all:!monitoring", tasks: [ { name: t, command: { cmd: t } } ] }\n`)).ran()).toEqual(['t']);
    expect((await run(`- { name: p, hosts: "all:&monitoring", tasks: [ { name: t, command: { cmd: t } } ] }\n`)).ran()).toEqual([]);
  });
});
