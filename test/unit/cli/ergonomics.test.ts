/**
 * Everyday ergonomics of the CLI: provision.yml (validated, overridden by flags), --log (the plain
 * view, timestamped, masked, 0600), --list-hosts, --list-tasks, --start-at-task, --no-color /
 * NO_COLOR, a mistyped command, shell completion, `provision help TOPIC`, and -vv's commands and
 * their output (masked).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { applyConfig, ConfigError, loadConfig } from '../../../src/cli/config.js';
import { completionScript } from '../../../src/cli/completion.js';
import { HELP_TOPICS, helpTopicText } from '../../../src/cli/help-topics.js';
import { openLog } from '../../../src/cli/log.js';
import { buildProgram, main } from '../../../src/cli/main.js';
import { makeReporter, useColor } from '../../../src/cli/output.js';
import { loadPlaybook, runPlaybook, type RunEvent } from '../../../src/executor/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { registerRole } from '../../../src/roles/index.js';
import { mask, registerSecret } from '../../../src/util/secrets.js';
import { RecordedConnector, RecordedSession } from '../executor/recorded-connection.js';
import { captureOutput } from '../helpers/output.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const closedInventory = path.join(ROOT, 'test/fixtures/bad/cli/closed.yml');
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-ergo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function write(name: string, text: string): string {
  const file = path.join(tmp, `${n++}-${name}`);
  writeFileSync(file, text);
  return file;
}
function project(files: Record<string, string>): string {
  const dir = path.join(tmp, `project-${n++}`);
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

/** The CLI as a user runs it, in a folder (provision.yml is read from the working directory). */
function cli(args: string[], cwd = ROOT, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/provision.cjs'), ...args], { cwd, env: { ...process.env, CI: '1', ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const PLAYBOOK = `- name: web
  hosts: web
  tasks:
    - { name: first, command: { cmd: do-first, creates: /first }, tags: [one] }
    - { name: second, command: { cmd: do-second, creates: /second } }
    - { name: third, command: { cmd: do-third, creates: /third } }
- name: everyone
  hosts: all
  tasks:
    - { name: fourth, command: { cmd: do-fourth, creates: /fourth } }
`;

describe('provision.yml', () => {
  it('absent: no settings', () => {
    expect(loadConfig(project({ 'x.txt': '' }))).toEqual({});
  });

  it('paths are relative to the project; an inventory name stays a name', () => {
    const dir = project({ 'provision.yml': 'inventory: inventory/prod.yml\nplaybook: playbooks/site.yml\nforks: 3\nlog: logs/run.log\ncolor: false\n' });
    expect(loadConfig(dir)).toEqual({ inventory: path.join(dir, 'inventory/prod.yml'), playbook: path.join(dir, 'playbooks/site.yml'), forks: 3, log: path.join(dir, 'logs/run.log'), color: false });
    expect(loadConfig(project({ 'provision.yml': 'inventory: prod\n' })).inventory).toBe('prod');
  });

  it.each([
    ['forks: many\n', ':1:8: forks: expected a number, got string "many"'],
    ['inventory: prod\ncolour: false\n', ':2:1: colour: unknown key "colour"'],
    ['forks: 0\n', ':1:8: forks: Too small: expected number to be >0 (got 0)'],
  ])('bad: %j → file:line:col', (text, message) => {
    const dir = project({ 'provision.yml': text });
    expect(() => loadConfig(dir)).toThrow(ConfigError);
    expect(() => loadConfig(dir)).toThrow(path.join(dir, 'provision.yml') + message);
  });

  it('a flag on the command line wins over the file; the file wins over the built-in default', () => {
    // As commander leaves the options after parsing `-p given.yml` (the action is not run here).
    const program = buildProgram(() => {});
    program.setOptionValueWithSource('playbook', 'given.yml', 'cli');
    applyConfig(program, { playbook: '/p/site.yml', forks: 4, inventory: 'prod' });
    expect(program.opts()).toMatchObject({ playbook: 'given.yml', forks: 4, inventory: 'prod' });
    const plain = buildProgram(() => {});
    expect(plain.opts().playbook).toBe('playbooks/site.yml');
    applyConfig(plain, { playbook: '/p/site.yml' });
    expect(plain.opts().playbook).toBe('/p/site.yml');
    // Options a command does not have are left alone.
    const show = plain.commands.find((c) => c.name() === 'show')!;
    applyConfig(show, { forks: 2 });
    expect(show.opts()).toEqual({});
  });

  it('the CLI reads it from the project folder (and a bad one is exit 4 before anything else)', () => {
    const dir = project({ 'provision.yml': `inventory: ${closedInventory}\nplaybook: site.yml\n`, 'site.yml': PLAYBOOK });
    const r = cli(['--list-hosts'], dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('play "web" (hosts: web): 2 hosts');
    const bad = project({ 'provision.yml': 'forks: -1\n' });
    const b = cli(['--list-hosts'], bad);
    expect(b.code).toBe(4);
    expect(b.stderr).toBe(`provision: error: ${path.join(bad, 'provision.yml')}:1:8: forks: Too small: expected number to be >0 (got -1)\nprovision: hint: provision.yml keys: inventory, playbook, forks, log, color\n`);
  });
});

describe('--list-hosts, --list-tasks: nothing is contacted (the inventory is a closed port: a connection would exit 3)', () => {
  const { stdout } = captureOutput();
  const playbook = write('site.yml', PLAYBOOK);

  it('--list-hosts: per play, its hosts after --limit', async () => {
    expect(await main(['-i', closedInventory, '-p', playbook, '--list-hosts', '--limit', 'web1'])).toBe(0);
    expect(stdout.join('')).toBe('play "web" (hosts: web): 1 host\n  web1\nplay "everyone" (hosts: all): 1 host\n  web1\n');
  });

  it('--list-tasks: per play, its tasks with their module and tags', async () => {
    expect(await main(['-i', closedInventory, '-p', playbook, '--list-tasks'])).toBe(0);
    expect(stdout.join('')).toBe(
      'play "web" (hosts: web, 2 selected)\n  first  (command)  [tags: one]\n  second  (command)\n  third  (command)\nplay "everyone" (hosts: all, 2 selected)\n  fourth  (command)\n',
    );
  });
});

describe('--start-at-task', () => {
  const { stderr } = captureOutput();

  it('tasks before the named one are left out, on every play after it too', async () => {
    const connector = new RecordedConnector(() => new RecordedSession({ answers: { 'exists:/first': { stdout: '', code: 1 }, 'exists:/second': { stdout: '', code: 1 }, 'exists:/third': { stdout: '', code: 1 }, 'exists:/fourth': { stdout: '', code: 1 } } }));
    const reporter = new MemoryReporter();
    await runPlaybook({ inventory: loadInventory(closedInventory), playbook: loadPlaybook(write('site.yml', PLAYBOOK)), limit: 'web1', check: false, startAtTask: 'second', connector, reporter });
    expect(connector.sessions.get('web1')!.ran).toEqual(['do-second', 'do-third', 'do-fourth']);
  });

  it('with roles, a name is known per host only: when no host reached it, the run says so', async () => {
    registerRole({ name: 'ergo-role', description: 'a role for --start-at-task', vars: z.object({}), tasks: () => [] });
    const play = write('roles.yml', '- name: web\n  hosts: web\n  roles: [ergo-role]\n  tasks:\n    - { name: first, command: { cmd: "true" } }\n');
    // The closed port: every host unreachable, so no host reaches any task.
    expect(await main(['-i', closedInventory, '-p', play, '--start-at-task', 'a role task'])).toBe(3);
    expect(stderr.join('')).toContain('provision: warning: --start-at-task: no host reached a task named "a role task"; no task ran\n');
  });

  it('a name that is no task: exit 4 with the nearest name, before any connection', async () => {
    expect(await main(['-i', closedInventory, '-p', write('site.yml', PLAYBOOK), '--start-at-task', 'secnd'])).toBe(4);
    expect(stderr.join('')).toMatch(/^provision: error: --start-at-task: no task named "secnd" in .*site\.yml\nprovision: hint: did you mean "second"\?\n$/);
  });
});

describe('-vv and --log: each command and its output, secrets masked', () => {
  const { stdout } = captureOutput();
  const SECRET = 'hunter2-Xq9';

  it('-vv prints each command and its output; a secret in the output is masked on screen and in the log', async () => {
    registerSecret(SECRET);
    const log = path.join(tmp, `run-${n++}.log`);
    const reporter = await makeReporter({ verbose: 2, log });
    const connector = new RecordedConnector(
      () => new RecordedSession({ answers: { 'exists:/first': { stdout: '', code: 1 } }, respond: (cmd) => (cmd === 'do-first' ? { stdout: `token is ${SECRET}\ndone`, stderr: '', code: 0 } : undefined) }),
    );
    const play = write('one.yml', '- name: web\n  hosts: web\n  tasks:\n    - { name: first, command: { cmd: do-first, creates: /first } }\n');
    await runPlaybook({ inventory: loadInventory(closedInventory), playbook: loadPlaybook(play), limit: 'web1', check: false, connector, reporter });
    await reporter.close?.();
    const screen = stdout.join('');
    expect(screen).toMatch(/^web1: \$ do-first \(exit 0, \d+ ms\)$/m);
    expect(screen).toContain(`    | token is ${mask(SECRET)}\n`);
    expect(mask(SECRET)).not.toContain(SECRET);
    expect(screen).toContain('    | done');
    expect(screen).not.toContain(SECRET);
    const text = readFileSync(log, 'utf8');
    expect(text).not.toContain(SECRET);
    expect(text).toContain(`| token is ${mask(SECRET)}\n`);
    // The same lines, each with its time.
    const lines = text.trimEnd().split('\n');
    expect(lines.length).toBe(screen.trimEnd().split('\n').length);
    for (const l of lines) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
    expect(statSync(log).mode & 0o777).toBe(0o600);
  });

  it('the log masks what it is given itself, is appended to, and a log readable by others is made 0600', () => {
    registerSecret(SECRET);
    const log = write('old.log', 'earlier run\n');
    const sink = openLog(log, { diff: false, verbose: 0 }, () => new Date('2026-11-28T00:00:00.000Z'));
    sink.emit({ kind: 'warning', msg: `leaked ${SECRET}?` } as RunEvent);
    sink.close?.();
    expect(readFileSync(log, 'utf8')).toBe(`earlier run\n2026-11-28T00:00:00.000Z warning: leaked ${mask(SECRET)}?\n`);
    expect(statSync(log).mode & 0o777).toBe(0o600);
  });

  it('a symlink where the log goes is refused (it would write wherever it points)', () => {
    const target = write('target', '');
    const link = path.join(tmp, `link-${n++}.log`);
    symlinkSync(target, link);
    expect(() => openLog(link, { diff: false, verbose: 0 })).toThrow(`--log ${link}: is a symbolic link`);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('');
  });
});

describe('colour', () => {
  it('on a terminal unless NO_COLOR or --no-color', () => {
    const saved = process.env.NO_COLOR;
    delete process.env.NO_COLOR;
    try {
      expect(useColor({}, { isTTY: true })).toBe(true);
      expect(useColor({ color: false }, { isTTY: true })).toBe(false);
      expect(useColor({}, { isTTY: false })).toBe(false);
      process.env.NO_COLOR = '1';
      expect(useColor({}, { isTTY: true })).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = saved;
    }
  });

  it('--no-color is an option of the run and of apply', () => {
    const program = buildProgram(() => {});
    expect(program.options.map((o) => o.long)).toContain('--no-color');
    expect(program.commands.find((c) => c.name() === 'apply')!.options.map((o) => o.long)).toContain('--no-color');
  });
});

describe('a mistyped command', () => {
  const { stderr } = captureOutput();
  it('is exit 4 with the nearest command', async () => {
    expect(await main(['pln', '-i', closedInventory])).toBe(4);
    expect(stderr.join('')).toBe(
      'provision: error: unknown command "pln" (did you mean plan?)\nprovision: hint: commands: facts, ping, plan, show, apply, drift, inventory, deploy, rollback, releases, init, db, pki, completion, help, lab; provision help\n',
    );
  });

  it("a command's own extra words are still refused (the run's leniency is not inherited)", async () => {
    expect(await main(['plan', '-i', closedInventory, 'extra'])).toBe(4);
    expect(stderr.join('')).toBe("provision: error: too many arguments for 'plan'. Expected 0 arguments but got 1.\n");
  });
});

describe('shell completion', () => {
  const complete = (shell: 'bash', line: string[]) => {
    const script = completionScript(buildProgram(() => {}), shell);
    const words = line.map((w) => `'${w}'`).join(' ');
    return execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words}); COMP_CWORD=${line.length - 1}; _provision_complete; printf '%s\\n' "\${COMPREPLY[@]}"`], { encoding: 'utf8' })
      .trim()
      .split('\n');
  };

  it('bash: commands, then a command\'s options, then help topics', () => {
    expect(complete('bash', ['provision', 'pl'])).toEqual(['plan']);
    expect(complete('bash', ['provision', 'plan', '--o'])).toEqual(['--out']);
    expect(complete('bash', ['provision', '-i', 'prod', '--list-'])).toEqual(['--list-hosts', '--list-tasks']);
    expect(complete('bash', ['provision', 'help', 'ex'])).toEqual(['exit-codes']);
  });

  it('zsh: the same function through bashcompinit; an unknown shell is exit 4', async () => {
    expect(completionScript(buildProgram(() => {}), 'zsh')).toMatch(/^# provision completion for zsh[\s\S]*bashcompinit[\s\S]*complete -o default -F _provision_complete provision\n$/);
    const r = cli(['completion', 'fish']);
    expect(r.code).toBe(4);
    expect(r.stderr).toBe('provision: error: completion: no script for shell "fish"\nprovision: hint: shells: bash, zsh\n');
  });
});

describe('provision help TOPIC', () => {
  it.each(Object.keys(HELP_TOPICS))('%s: a page cut from the README', (topic) => {
    const text = helpTopicText(topic);
    expect(text.split('\n')[0]).toBe(`PROVISION-${topic.toUpperCase()}(7)`);
    expect(text.split('\n').length).toBeGreaterThan(5);
    expect(text).not.toContain('```');
  });

  it('exit codes: the table as the README has it', () => {
    expect(helpTopicText('exit-codes')).toContain('| 4 | bad input: inventory, playbook, vars or arguments; no host was contacted |');
  });

  it('from the CLI: a topic, a command, and an unknown topic (exit 4)', () => {
    expect(cli(['help', 'inventory']).stdout).toMatch(/^PROVISION-INVENTORY\(7\)\n\nINVENTORY\n/);
    expect(cli(['help', 'plan']).stdout).toMatch(/^Usage: provision plan \[options\]/);
    const r = cli(['help', 'secrts']);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^provision: error: help: no topic or command "secrts" \(did you mean "secrets"\?\)\n/);
  });
});
