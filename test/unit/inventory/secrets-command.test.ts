import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadInventory, prepareHosts } from '../../../src/inventory/index.js';
import { Secret } from '../../../src/util/secrets.js';
import { thrown } from '../helpers/inventory-error.js';

/*
 * secrets_command with a fake secret manager: a script that logs each call's arguments and prints
 * a value per name (as `pass show provision/NAME` would), or fails for some names.
 */
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-secrets-command-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const log = path.join(tmp, 'calls.log');
const program = path.join(tmp, 'fake-pass');
writeFileSync(
  program,
  `#!/bin/sh
printf '%s\\n' "$*" >> ${log}
case "$2" in
  provision/db_password) printf 'correct-horse-battery\\n' ;;
  provision/multi) printf 'line-one-value\\nline two\\n' ;;
  provision/short) printf 'abc\\n' ;;
  provision/empty) ;;
  provision/broken) echo 'partial-secret-value on stdout'; echo 'error: partial-secret-value' >&2; exit 2 ;;
  *) printf 'value-of-%s\\n' "$2" ;;
esac
`,
);
chmodSync(program, 0o755);

const calls = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []);

function write(vars: string, command = `${program} show provision/{name}`): string {
  const file = path.join(tmp, 'inv.yml');
  writeFileSync(file, `secrets_command: ${JSON.stringify(command)}\nhosts:\n  web1:\n    address: 127.0.0.1\n    vars:\n${vars}\n  web2:\n    address: 127.0.0.2\n`);
  return file;
}
const load = (file: string, env: NodeJS.ProcessEnv = {}) => loadInventory(file, { env, sshConfig: false, interactive: false });

beforeEach(() => rmSync(log, { force: true }));

describe('secrets_command', () => {
  it('runs only for a secret that is read, once, and its output is a Secret', () => {
    const file = write('      db_password: !secret db_password\n      again: !secret db_password\n      unused_elsewhere: !secret api_token');
    const inv = load(file);
    expect(calls()).toEqual([]); // loading runs nothing
    const vars = inv.hosts.get('web1')!.vars;
    expect(vars.db_password).toBeInstanceOf(Secret);
    expect((vars.db_password as Secret).reveal()).toBe('correct-horse-battery');
    expect(vars.again).toBe(vars.db_password);
    expect(calls()).toEqual(['show provision/db_password']);
    expect(inv.secrets.map((s) => s.name)).toContain('db_password');
  });

  it('`ping` (no vars read) runs nothing; a run of the host runs what its vars hold', () => {
    const inv = load(write('      db_password: !secret db_password\n      api_token: !secret api_token'));
    prepareHosts(inv, ['web1', 'web2'], { vars: false });
    expect(calls()).toEqual([]);
    prepareHosts(inv, ['web1']);
    expect(calls().sort()).toEqual(['show provision/api_token', 'show provision/db_password']);
  });

  it('the environment and the secrets file win; the command is for what neither has', () => {
    const inv = load(write('      db_password: !secret db_password\n      api_token: !secret api_token'), { PROVISION_SECRET_DB_PASSWORD: 'from-the-environment' });
    expect((inv.hosts.get('web1')!.vars.db_password as Secret).reveal()).toBe('from-the-environment');
    expect((inv.hosts.get('web1')!.vars.api_token as Secret).reveal()).toBe('value-of-provision/api_token');
    expect(calls()).toEqual(['show provision/api_token']);
  });

  it('its output less the final line break', () => {
    const inv = load(write('      multi: !secret multi'));
    expect((inv.hosts.get('web1')!.vars.multi as Secret).reveal()).toBe('line-one-value\nline two');
  });

  it('runs without a shell: a name is one argument, never shell syntax', () => {
    const marker = path.join(tmp, 'pwned');
    const inv = load(write(`      odd: !secret "x;touch ${marker}"`));
    expect((inv.hosts.get('web1')!.vars.odd as Secret).reveal()).toBe(`value-of-provision/x;touch ${marker}`);
    expect(existsSync(marker)).toBe(false);
  });

  it('a failure names the secret, the program and its exit code, never its output', () => {
    const file = write('      broken: !secret broken');
    const err = thrown(() => load(file).hosts.get('web1')!.vars.broken);
    expect(err.message).toBe(`${file}:6:23: hosts.web1.vars.broken: secret "broken": secrets_command ${program}: exited with code 2`);
    expect(err.hint).toBe('its output is not shown (it could hold the secret): run the command yourself to see why');
    expect(`${err.message} ${err.hint}`).not.toContain('partial-secret-value');
  });

  it.each([
    ['empty', (f: string) => `${f}:6:22: hosts.web1.vars.empty: secret "empty": secrets_command ${program}: printed nothing`],
    ['short', (f: string) => `${f}:6:22: hosts.web1.vars.short: secret "short" is shorter than 8 characters (from secrets_command)`],
  ])('a value %s', (name, message) => {
    const file = write(`      ${name}: !secret ${name}`);
    expect(thrown(() => prepareHosts(load(file), ['web1'])).message).toBe(message(file));
  });

  it('a program that does not exist', () => {
    const file = write('      db_password: !secret db_password', '/nonexistent/secret-tool get {name}');
    expect(thrown(() => prepareHosts(load(file), ['web1'])).message).toBe(`${file}:6:28: hosts.web1.vars.db_password: secret "db_password": secrets_command /nonexistent/secret-tool: no such program`);
  });

  it('a command that cannot be split is refused when the inventory is loaded', () => {
    const file = write('      db_password: !secret db_password', "pass show 'unclosed");
    expect(thrown(() => load(file)).message).toBe(`${file}:1:18: secrets_command: cannot split it into words (an unclosed quote?)`);
  });

  it('without secrets_command, a secret found nowhere is still refused when the inventory is loaded', () => {
    const file = path.join(tmp, 'plain.yml');
    writeFileSync(file, 'hosts:\n  web1:\n    address: 127.0.0.1\n    vars:\n      db_password: !secret db_password\n');
    expect(thrown(() => load(file)).message).toMatch(/secret "db_password" is not defined/);
  });
});
