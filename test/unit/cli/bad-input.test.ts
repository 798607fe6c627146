import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { captureOutput } from '../helpers/output.ts';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/bad');
const inventory = path.join(fixtures, 'cli/closed.yml');
const playbook = path.join(fixtures, 'cli/valid-playbook.yml');
const badPlaybook = (name: string) => path.join(fixtures, 'playbook', name);

const { stderr, stdout } = captureOutput();

/** Run the CLI in-process; the lines it wrote to stderr. */
async function run(argv: string[]): Promise<{ code: number; lines: string[] }> {
  const code = await main(argv);
  return { code, lines: stderr.join('').split('\n').filter((l) => l !== '') };
}

/**
 * Bad input: exit 4, one "provision: error:" line (plus at most one hint), no stack trace,
 * and no connection (which, against the closed port, would have made it exit 3).
 */
async function expectBadInput(argv: string[], message: string | RegExp): Promise<string> {
  const { code, lines } = await run(argv);
  expect(code, `stderr:\n${lines.join('\n')}`).toBe(4);
  expect(lines.length === 1 || (lines.length === 2 && lines[1]!.startsWith('provision: hint: ')), lines.join('\n')).toBe(true);
  expect(lines[0]).toMatch(/^provision: error: /);
  const text = lines[0]!.slice('provision: error: '.length);
  if (typeof message === 'string') expect(text).toBe(message);
  else expect(text).toMatch(message);
  expect(stderr.join('')).not.toMatch(/^\s+at /m);
  expect(stdout.join('')).toBe(''); // no run started, nothing reported
  return lines[1] ?? '';
}

const base = ['-i', inventory, '-p', playbook];

describe('CLI bad input: exit 4, one error line, no connection', () => {
  it('the guard works: a valid run against the closed port is unreachable (exit 3)', async () => {
    const { code } = await run(base);
    expect(code).toBe(3);
  });

  it('--forks 0', async () => {
    await expectBadInput([...base, '--forks', '0'], '--forks: "0" is not a whole number of 1 or more');
  });

  it('--forks abc', async () => {
    await expectBadInput([...base, '--forks', 'abc'], '--forks: "abc" is not a whole number of 1 or more');
  });

  it('--serial -1', async () => {
    await expectBadInput([...base, '--serial', '-1'], '--serial: "-1" is not a whole number of 1 or more');
  });

  it('--limit naming an unknown host', async () => {
    const hint = await expectBadInput([...base, '--limit', 'web9'], '--limit: "web9" is neither a host nor a group of inventory closed');
    expect(hint).toBe('provision: hint: known groups: all, web');
  });

  it('--limit with an unknown exclusion', async () => {
    await expectBadInput([...base, '--limit', 'web,!db'], '--limit: "db" is neither a host nor a group of inventory closed');
  });

  it('a nonexistent inventory', async () => {
    const missing = path.join(fixtures, 'cli/missing.yml');
    const hint = await expectBadInput(['-i', missing, '-p', playbook], `inventory ${missing}: no such file`);
    expect(hint).toBe('provision: hint: --inventory NAME reads inventory/NAME.yml; pass a path to use another file');
  });

  it('a bad inventory (names file, line, field)', async () => {
    const file = path.join(fixtures, 'inventory/port-string.yml');
    await expectBadInput(['-i', file, '-p', playbook], `${file}:4:11: hosts.web1.port: expected a number, got string "22x"`);
  });

  it('a YAML alias bomb as the inventory: exit 4, the file named, at once', async () => {
    const file = path.join(fixtures, 'inventory/alias-bomb.yml');
    await expectBadInput(['-i', file, '-p', playbook], `${file}:4:10: YAML error: its aliases expand to too many nodes (a "billion laughs" document?)`);
  });

  it('a nonexistent playbook', async () => {
    const missing = path.join(fixtures, 'cli/missing-playbook.yml');
    await expectBadInput([...base.slice(0, 2), '-p', missing], `playbook ${missing}: no such file`);
  });

  it.each([
    ['unknown-role.yml', ':3:11: [0].roles[0]: unknown role "ngnix"'],
    ['unknown-module.yml', ':5:7: [0].tasks[0].yum: unknown module "yum"'],
    ['two-modules.yml', ':4:7: [0].tasks[0]: a task names exactly one module (found command, file)'],
    ['bad-params.yml', ':6:15: [0].tasks[0].file.path: an absolute path (got "tmp/x")'],
    ['module-unknown-param.yml', ':7:9: [0].tasks[0].command.creats: unknown key "creats"'],
    ['yaml-error.yml', ':6:1: [0].tasks[0].command.cmd: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }'],
    ['notify-unknown.yml', ':6:15: [0].tasks[0].notify: no handler named "restart ngnix"'],
  ])('playbook %s', async (name, rest) => {
    const file = badPlaybook(name);
    await expectBadInput([...base.slice(0, 2), '-p', file], file + rest);
  });

  describe('a secret in a param that does not take one: refused before any connection', () => {
    const secretInventory = path.join(fixtures, 'cli/secret.yml');
    const cliPlaybook = (name: string) => path.join(fixtures, 'cli', name);
    beforeEach(() => vi.stubEnv('PROVISION_SECRET_DB_PASSWORD', 'Pa55\\w0rd"2024'));
    afterEach(() => vi.unstubAllEnvs());

    it('in a command line (cmd): exit 4, file:line:col of the param, the var named, the way to do it instead', async () => {
      const file = cliPlaybook('secret-in-cmd.yml');
      const hint = await expectBadInput(
        ['-i', secretInventory, '-p', file],
        `${file}:7:14: [0].tasks[0].command.cmd: reads the secret var "db_password" (host web1): a secret never goes into a command line, where ps and sudo's log show it`,
      );
      expect(hint).toBe('provision: hint: hand it to the command on stdin (stdin: "{{ db_password }}") or in its environment (environment: { NAME: "{{ db_password }}" })');
      expect(stderr.join('')).not.toContain('Pa55');
    });

    it('in a path that goes into a command line (creates), through a nested var', async () => {
      const file = cliPlaybook('secret-in-path.yml');
      const hint = await expectBadInput(
        ['-i', secretInventory, '-p', file],
        `${file}:8:18: [0].tasks[0].command.creates: reads the secret var "db.password" (host web1): command's creates does not take secrets (it may reach a command line or the output)`,
      );
      expect(hint).toBe('provision: hint: command takes secrets in: stdin, environment');
    });

    it('on stdin and in the environment it is accepted (the run goes on to connect: exit 3 on the closed port)', async () => {
      const { code, lines } = await run(['-i', secretInventory, '-p', cliPlaybook('secret-on-stdin.yml')]);
      expect(code, lines.join('\n')).toBe(3);
    });
  });

  // Commander reports these itself; configureOutput.outputError gives them the same prefix.
  it('an unknown option', async () => {
    await expectBadInput([...base, '--bogus'], /unknown option '--bogus'/);
  });

  it('a missing --inventory', async () => {
    await expectBadInput(['-p', playbook], /--inventory/);
  });

  it('an unexpected argument', async () => {
    await expectBadInput([...base, 'extra'], /^unknown command "extra"$/);
  });

  it('commander\'s own errors exit 4 with one prefixed line and no stack trace', async () => {
    for (const argv of [[...base, '--bogus'], ['-p', playbook], [...base, 'extra']]) {
      stderr.length = 0;
      const { code, lines } = await run(argv);
      expect(code).toBe(4);
      expect(lines.filter((l) => !l.startsWith('provision: hint:'))).toHaveLength(1);
      expect(lines[0]).toMatch(/^provision: error: /);
      expect(stdout.join('')).toBe('');
    }
  });
});
