import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../../src/inventory/index.js';
import { InventoryError } from '../../../src/util/errors.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/bad/inventory');

function loadError(file: string, env: NodeJS.ProcessEnv = {}): InventoryError {
  try {
    loadInventory(file, { env });
  } catch (err) {
    expect(err).toBeInstanceOf(InventoryError);
    return err as InventoryError;
  }
  throw new Error(`${file} loaded without an error`);
}

/** fixture → the message after "<fixture path>": line:col, field, what was expected. */
const cases: Record<string, string> = {
  'yaml-syntax.yml': ':5:1: hosts.web1.vars.a: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
  'empty.yml': ':1:1: (top level): the inventory is empty',
  'top-level-list.yml': ':1:1: (top level): expected a map, got a list',
  'unknown-top-key.yml': ':4:1: hostvars: unknown key "hostvars"',
  'unknown-host-key.yml': ':3:5: hosts.web1.adress: unknown key "adress" (did you mean "address"?)',
  'unknown-optional-key.yml': ':4:5: hosts.web1.prot: unknown key "prot"',
  'unknown-defaults-key.yml': ':2:3: defaults.usr: unknown key "usr"',
  'unknown-group-key.yml': ':7:5: groups.web.varz: unknown key "varz"',
  'port-string.yml': ':4:11: hosts.web1.port: expected a number, got string "22x"',
  'port-range.yml': ':4:11: hosts.web1.port: Too big: expected number to be <=65535 (got 70000)',
  'become-string.yml': ':4:13: hosts.web1.become: expected true or false, got string "yes"',
  'host-no-address.yml': ':3:5: hosts.web1.address: required (a string)',
  'bad-host-name.yml': ':2:3: hosts.web_1!: invalid name "web_1!": a name is letters, digits, ".", "_" and "-", starting with a letter or digit',
  'no-hosts.yml': ':1:1: hosts: the inventory has no hosts',
  'group-unknown-host.yml': ':6:19: groups.web.hosts[1]: unknown host "web2"',
  'children-unknown-group.yml': ':8:21: groups.prod.children[1]: unknown group "db"',
  'children-cycle.yml': ':7:5: groups.a.children: children form a cycle (a → b → a)',
  'children-cycle-empty.yml': ':6:5: groups.edge.children: children form a cycle (edge → core → edge)',
  'host-named-like-group.yml': ':2:3: hosts.web: "web" is also a group name',
  'host-named-all.yml': ':2:3: hosts.all: "all" is also a group name',
  'host-groups-names-host.yml': ':4:14: hosts.web1.groups[0]: "db1" is a host, not a group',
  'bad-var-name.yml': ':5:7: hosts.web1.vars.http-port: invalid name "http-port": a var name is letters, digits and _',
  'undefined-secret.yml': `:5:28: hosts.web1.vars.db_password: secret "db_password" is not defined (${path.join(dir, 'undefined-secret.secrets.yml')} does not exist, and $PROVISION_SECRET_DB_PASSWORD is not set)`,
  'short-secret.yml': ':5:26: hosts.web1.vars.api_token: secret "api_token" is shorter than 8 characters (from $PROVISION_SECRET_API_TOKEN)',
  'secrets-file-missing.yml': `:6:28: hosts.web1.vars.db_password: secret "db_password" is not defined (${path.join(dir, 'missing.secrets.yml')} does not exist, and $PROVISION_SECRET_DB_PASSWORD is not set)`,
  'jump-syntax.yml': ':4:11: hosts.web1.jump: "admin@@bastion:22" is neither an inventory host nor [user@]address[:port]',
  'jump-syntax-group.yml': ':7:11: groups.web.jump: "a b" is neither an inventory host nor [user@]address[:port]',
  'jump-self.yml': ':4:11: hosts.web1.jump: host web1 cannot jump through itself',
  'duplicate-key.yml': ':5:5: hosts.web1.port: duplicate key (a key may appear once in a map)',
  'alias-bomb.yml': ':4:10: YAML error: its aliases expand to too many nodes (a "billion laughs" document?)',
};

describe('bad inventories: one fixture per mistake, one exact message each', () => {
  it('every fixture has an expected message (and every message a fixture)', () => {
    expect(readdirSync(dir).sort()).toEqual(Object.keys(cases).sort());
  });

  it.each(Object.entries(cases))('%s', (name, expected) => {
    const file = path.join(dir, name);
    const err = loadError(file, { PROVISION_SECRET_API_TOKEN: 'short' });
    expect(err.message).toBe(file + expected);
  });

  it('hints say how to fix what the message names', () => {
    expect(loadError(path.join(dir, 'undefined-secret.yml')).hint).toBe(
      `set it in ${path.relative(process.cwd(), path.join(dir, 'undefined-secret.secrets.yml'))} (mode 0600) or in $PROVISION_SECRET_DB_PASSWORD`,
    );
    expect(loadError(path.join(dir, 'empty.yml')).hint).toBe('it needs at least a hosts: map');
  });

  it('a missing inventory file', () => {
    const file = path.join(dir, 'does-not-exist.yml');
    const err = loadError(file);
    expect(err.message).toBe(`inventory ${file}: no such file`);
    expect(err.hint).toBe('--inventory NAME reads inventory/NAME.yml; pass a path to use another file');
  });
});

describe('bad secrets files (made at test time: git does not keep file modes)', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'provision-bad-secrets-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  function setup(name: string, secrets: string, mode: number, inventory?: string): string {
    const sub = path.join(tmp, name);
    rmSync(sub, { recursive: true, force: true });
    writeFileSync(path.join(tmp, `${name}.secrets.yml`), secrets);
    chmodSync(path.join(tmp, `${name}.secrets.yml`), mode);
    const inv = path.join(tmp, `${name}.yml`);
    writeFileSync(inv, inventory ?? 'hosts:\n  web1:\n    address: 10.0.0.1\n    vars:\n      db_password: !secret db_password\n');
    return inv;
  }

  it('a secrets file readable by others (0644) is refused, naming the !secret that needed it', () => {
    const inv = setup('mode', 'db_password: correct-horse-battery\n', 0o644);
    const err = loadError(inv);
    const secretsFile = path.join(tmp, 'mode.secrets.yml');
    expect(err.message).toBe(`${inv}:5:28: hosts.web1.vars.db_password: secrets file ${secretsFile} is readable by others (mode 0644, expected 0600)`);
    expect(err.hint).toBe(`run: chmod 600 ${secretsFile}`);
  });

  it('an explicit secrets_file readable by group is refused at the secrets_file key', () => {
    const inv = setup('explicit', 'db_password: correct-horse-battery\n', 0o640, 'secrets_file: explicit.secrets.yml\nhosts:\n  web1:\n    address: 10.0.0.1\n');
    expect(loadError(inv).message).toBe(
      `${inv}:1:15: secrets_file: secrets file ${path.join(tmp, 'explicit.secrets.yml')} is readable by others (mode 0640, expected 0600)`,
    );
  });

  it('a secret shorter than 8 characters in the secrets file', () => {
    const inv = setup('short', 'db_password: hunter2\n', 0o600);
    expect(loadError(inv).message).toBe(
      `${inv}:5:28: hosts.web1.vars.db_password: secret "db_password" is shorter than 8 characters (from ${path.join(tmp, 'short.secrets.yml')})`,
    );
  });

  it('a secrets file that is not a map of strings', () => {
    const secretsFile = path.join(tmp, 'shape.secrets.yml');
    let inv = setup('shape', '- a\n- b\n', 0o600);
    expect(loadError(inv).message).toBe(`${secretsFile}:1:1: (top level): a secrets file is a map of name: value, got a list`);
    inv = setup('shape', 'db_password:\n  nested: value-value\n', 0o600);
    expect(loadError(inv).message).toBe(`${secretsFile}:2:3: db_password: a secret is a string, got object`);
  });

  it('a YAML error in the secrets file names the secrets file', () => {
    const inv = setup('syntax', 'db_password: "unterminated\n', 0o600);
    expect(loadError(inv).message).toBe(`${path.join(tmp, 'syntax.secrets.yml')}:1:14: YAML syntax error: a missing closing quote or bracket`);
  });

  // yaml's own messages quote the document ("Invalid escape sequence \\q", "Unresolved alias … NAME"):
  // for a secrets file, only file:line:col and the kind of mistake.
  it.each([
    ['an invalid escape', 'api_token: tok_0123456789abcdef\ndb_password: "S3cr3t\\qV4lue"\n', ':2:14: YAML syntax error: an invalid escape sequence in a double-quoted value'],
    ['a value that reads as a map', 'db_password: S3cr3t: V4lue\n', ':1:14: YAML syntax error: a value that reads as a nested map (quote values that contain ": ")'],
    ['a value that starts with a reserved character', 'db_password: @S3cr3tV4lue\n', ':1:14: YAML syntax error: a plain value that starts with a reserved character (quote the value)'],
    ['an unterminated flow value', 'db_password: [S3cr3tV4lue\n', ':1:14: YAML syntax error: bad indentation, or an unclosed [ or {'],
    ['a value read as an alias', 'db_password: *S3cr3tV4lue\n', ':1:14: YAML error: an alias (*name) whose anchor (&name) is not set before it'],
  ])('a broken value in the secrets file (%s): the error shows none of it', (_name, secrets, expected) => {
    const inv = setup('broken', secrets, 0o600);
    const err = loadError(inv);
    expect(err.message).toBe(path.join(tmp, 'broken.secrets.yml') + expected);
    expect(`${err.message} ${err.hint ?? ''}`).not.toMatch(/S3cr3t|V4lue|tok_/);
  });

  it('the default secrets file is checked even when no !secret uses it', () => {
    const inv = setup('unused', 'x: 1\n', 0o644, 'hosts:\n  web1:\n    address: 10.0.0.1\n');
    expect(loadError(inv).message).toBe(
      `${inv}:1:1: (top level): secrets file ${path.join(tmp, 'unused.secrets.yml')} is readable by others (mode 0644, expected 0600)`,
    );
  });
});
