/**
 * A task's (or a block's) become / become_user: its command runs as that user through sudo
 * (`sudo … -H -u NAME --`), with the become password rules of the connection (answering sudo's own
 * prompt only, never in a command line, a refused password one clear error). Through a real SSH
 * channel (the in-process server of transport/fake-host.ts, whose exec requests are recorded).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../../src/cli/exit-codes.js';
import { loadPlaybook, runPlaybook, SshConnector, type RunEvent } from '../../../src/executor/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { PlaybookError } from '../../../src/util/errors.js';
import { fakeHost, type FakeHost, type SudoAsks } from '../transport/fake-host.js';

const PASSWORD = 'Tr0ub4dor&3;echo LEAKED';
let fake: FakeHost | undefined;
let tmp: string | undefined;

afterEach(async () => {
  await fake?.close();
  fake = undefined;
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
});

async function setUp(asks: SudoAsks): Promise<string> {
  fake = await fakeHost({ asks, password: PASSWORD });
  tmp = mkdtempSync(path.join(tmpdir(), 'provision-become-user-'));
  const c = fake.host.connection;
  const inventory = path.join(tmp, 'inv.yml');
  // channel: exec, so each command is an exec request the fake host records (what sudoOf reads); through
  // the long-lived channel the same sudo line starts the identity's reader (persistent-channel.test.ts,
  // and become_user: app on a real host in test/integration/task-language.test.ts).
  writeFileSync(
    inventory,
    `hosts:\n  fake: { address: 127.0.0.1, port: ${c.port}, user: alice, become: true, become_password_env: ${c.becomePasswordEnv}, known_hosts: ${c.knownHosts}, accept_new_host_keys: true, channel: exec, vars: { app_user: app } }\n`,
  );
  return inventory;
}

async function run(inventoryFile: string, play: string, check = false) {
  const file = path.join(tmp!, `play-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(file, play);
  const inventory = loadInventory(inventoryFile);
  const before = fake!.execs().length;
  const reporter = new MemoryReporter();
  const res = await runPlaybook({ inventory, playbook: loadPlaybook(file), check, connector: new SshConnector(inventory), reporter });
  const results = reporter.events.filter((e): e is Extract<RunEvent, { kind: 'task-result' }> => e.kind === 'task-result');
  return { res, execs: fake!.execs().slice(before), results };
}

/** The exec request that ran this marker command, and how sudo was told to run it (up to the script). */
function sudoOf(execs: string[], marker: string): string {
  const line = execs.find((e) => e.includes(marker));
  if (!line) throw new Error(`no exec ran ${marker}`);
  return line.startsWith('sh -c ') ? '' : line.slice(0, line.indexOf(' sh -c '));
}

const PLAY = `
- name: p
  hosts: all
  vars: { who: app }
  tasks:
    - { name: as app, command: { cmd: "echo marker-one" }, become_user: app }
    - { name: as root, command: { cmd: "echo marker-two" } }
    - name: a block as www-data
      become_user: www-data
      block:
        - { name: inherited, command: { cmd: "echo marker-three" } }
        - { name: its own user wins, command: { cmd: "echo marker-four" }, become_user: "{{ app_user }}" }
        - { name: no become, command: { cmd: "echo marker-five" }, become: false }
`;

describe('become and become_user on a task', () => {
  it('the command runs under sudo -u NAME (task, block inherited, template), become: false runs as the login user', async () => {
    const inv = await setUp('never');
    const { execs, res } = await run(inv, PLAY);
    expect(exitCodeOf(res)).toBe(2);
    expect(sudoOf(execs, 'marker-one')).toBe('sudo -n -H -u app --');
    expect(sudoOf(execs, 'marker-two')).toBe('sudo -n -H -u root --');
    expect(sudoOf(execs, 'marker-three')).toBe('sudo -n -H -u www-data --');
    expect(sudoOf(execs, 'marker-four')).toBe('sudo -n -H -u app --');
    expect(sudoOf(execs, 'marker-five')).toBe('');
  });

  it('with a become password: it answers sudo\'s prompt for the other user too, never in a command line', async () => {
    const inv = await setUp('always');
    const { execs, results } = await run(inv, PLAY);
    expect(results.map((r) => `${r.task}: ${r.status}`)).toEqual(['as app: changed', 'as root: changed', 'inherited: changed', 'its own user wins: changed', 'no become: changed']);
    expect(sudoOf(execs, 'marker-one')).toMatch(/^sudo -S -p '\[provision sudo [0-9a-f]+\] password: ' -H -u app --$/);
    expect(fake!.attempts().every((a) => a === PASSWORD)).toBe(true);
    expect(execs.join('\n')).not.toContain('LEAKED');
  });

  it('a refused password is one clear error, the host unreachable, and the command never ran', async () => {
    const inv = await setUp('always');
    process.env[fake!.host.connection.becomePasswordEnv!] = 'not-the-password';
    const { res, execs } = await run(inv, `
- name: p
  hosts: all
  tasks:
    - { name: as app, command: { cmd: "echo marker-one" }, become_user: app }
`);
    expect(exitCodeOf(res)).toBe(3);
    expect(res.hosts['fake']!.unreachable).toMatch(/sudo refused the become password \(from \$PROVISION_TEST_SUDO_\d+\) for alice; nothing was run as (root|app)/);
    expect(execs.some((e) => e.includes('marker-one'))).toBe(false);
    expect(fake!.attempts()).toEqual(['not-the-password']);
  });

  it('--check and plans say the user: the change is "run as app"', async () => {
    const inv = await setUp('never');
    const { results, execs } = await run(inv, PLAY, true);
    expect(execs.some((e) => e.includes('marker-'))).toBe(false);
    expect(results.map((r) => `${r.task}: ${r.changes.map((c) => c.action).join(', ')}`)).toEqual([
      'as app: run as app',
      'as root: run',
      'inherited: run as www-data',
      'its own user wins: run as app',
      'no become: run as alice',
    ]);
  });
});

describe('what a task cannot do as another user is refused at load (exit 4, file:line:col)', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['a file written as another user', '{ name: t, copy: { dest: /tmp/x, content: "x" }, become_user: app }', /:4:\d+: \[0\]\.tasks\[0\]\.become_user: become_user: app on a copy task \("t"\) is not supported: provision runs only commands as another user; copy reads and writes as root, under its safe-path rules/],
    ['become: false on a module', '{ name: t, file: { path: /tmp/x, state: directory }, become: false }', /:4:\d+: \[0\]\.tasks\[0\]\.become: become: false on a file task \("t"\) is not supported/],
    ['a guard read as someone else', '{ name: t, command: { cmd: "true", unless: "test -e /x" }, become_user: app }', /:4:\d+: \[0\]\.tasks\[0\]\.become_user: unless with become_user: app is not supported: unless is a state read, run as the connection's user, not as the command's/],
    ['not a user name', '{ name: t, command: { cmd: "true" }, become_user: "-oops" }', /:4:\d+: \[0\]\.tasks\[0\]\.become_user: "-oops" is not a user name/],
    ['on a handler', '{ name: t, command: { cmd: "true" } }\n  handlers:\n    - { name: h, command: { cmd: "true" }, become_user: app }', /:6:\d+: \[0\]\.handlers\[0\]\.become_user: not supported on a handler/],
  ];
  it.each(cases)('%s', (_what, task, message) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-become-load-'));
    try {
      const file = path.join(dir, 'p.yml');
      writeFileSync(file, `- name: p\n  hosts: all\n  tasks:\n    - ${task}\n`.replace('    - {', '    - {').replace(/^(    - .*)$/m, '$1'));
      expect(() => loadPlaybook(file)).toThrow(PlaybookError);
      expect(() => loadPlaybook(file)).toThrow(message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('become: true (as root, what the inventory does) is accepted on any module, as Ansible roles write it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-become-load-'));
    try {
      const file = path.join(dir, 'p.yml');
      writeFileSync(file, '- name: p\n  hosts: all\n  tasks:\n    - { name: t, apt: { name: curl }, become: true, become_user: root }\n');
      expect(loadPlaybook(file).plays[0]!.tasks[0]!.become).toMatchObject({ become: true, user: 'root' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
