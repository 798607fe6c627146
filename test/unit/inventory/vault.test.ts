import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { bash, cliLine } from '../cli/terminal-helpers.js';
import { quote } from '../../../src/util/quote.js';
import { loadInventory, prepareHosts, type LoadOptions } from '../../../src/inventory/index.js';
import { decryptVault, parseVaultText, VaultFormatError, VaultPasswordError } from '../../../src/inventory/vault/decrypt.js';
import { mask, Secret, SECRET_MASK } from '../../../src/util/secrets.js';
import { captureOutput } from '../helpers/output.ts';
import { thrown } from '../helpers/inventory-error.js';

/*
 * The fixtures under test/fixtures/good/ansible/vault were made once with the real tool, ansible-vault
 * of ansible-core 2.14 (Debian 12), and committed with their password (../vault-password):
 *   ansible-vault encrypt --vault-password-file vault-password --output vault/group_vars/all/vault.yml all.yml
 *   ansible-vault encrypt --vault-id prod@vault-password --output vault/group_vars/db/vault.yml db.yml   (format 1.2)
 *   ansible-vault encrypt_string --vault-password-file vault-password 'tok_0123456789abcdef' --name api_token
 *   ansible-vault encrypt_string --vault-id prod@vault-password 'prod-only-value-42' --name prod_token
 *   ansible-vault encrypt --vault-password-file OTHER --output vault/group_vars/other/vault.yml other.yml (another password)
 * `ansible -i vault/hosts.yml db1 --vault-password-file vault-password -m debug -a 'var=mysql_dsn'` shows the values below.
 */
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/good/ansible');
const inventory = path.join(fixtures, 'vault/hosts.yml');
const passwordFile = path.join(fixtures, 'vault-password');
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-vault-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const load = (opts: LoadOptions = {}) => loadInventory(inventory, { env: {}, sshConfig: false, interactive: false, ...opts });
const reveal = (v: unknown) => (v instanceof Secret ? v.reveal() : v);

describe('files and values made by ansible-vault decrypt', () => {
  const inv = load({ vaultPasswordFile: passwordFile });
  prepareHosts(inv, ['db1', 'web1']);
  const db1 = inv.hosts.get('db1')!.vars;

  it('a whole encrypted file (format 1.1): every value a Secret', () => {
    expect(db1.vault_mysql_app_password).toBeInstanceOf(Secret);
    expect(reveal(db1.vault_mysql_app_password)).toBe('s3cret-app-passw0rd');
    // A number in an encrypted file is a secret too (a PIN).
    expect(reveal(db1.vault_pin)).toBe('12345678');
  });

  it('an encrypted file with a vault id (format 1.2)', () => {
    expect(reveal(db1.vault_db_root_password)).toBe('r00t-passw0rd-of-db');
  });

  it('inline !vault values, 1.1 and 1.2', () => {
    expect(db1.api_token).toBeInstanceOf(Secret);
    expect(reveal(db1.api_token)).toBe('tok_0123456789abcdef');
    expect(reveal(db1.prod_token)).toBe('prod-only-value-42');
  });

  it('vars that refer to vault vars resolve, and stay Secrets', () => {
    expect(db1.mysql_app_password).toBeInstanceOf(Secret);
    expect(reveal(db1.mysql_app_password)).toBe('s3cret-app-passw0rd');
    expect(db1.mysql_dsn).toBeInstanceOf(Secret);
    expect(reveal(db1.mysql_dsn)).toBe('mysql://app:s3cret-app-passw0rd@db1/app');
    expect(reveal(db1.db_root_password)).toBe('r00t-passw0rd-of-db');
    expect(db1.app_name).toBe('shop');
  });

  it('ansible_become_password from the vault is the sudo password, a Secret', () => {
    const c = inv.hosts.get('web1')!.connection;
    expect(c.become).toBe(true);
    expect(c.becomePassword).toBeInstanceOf(Secret);
    expect(c.becomePassword!.reveal()).toBe('sudo-passw0rd-for-deploy');
  });

  it('no value shows: JSON, the masker (the password itself included)', () => {
    const json = JSON.stringify({ ...db1 });
    for (const v of ['s3cret-app-passw0rd', 'r00t-passw0rd-of-db', 'tok_0123456789abcdef', 'prod-only-value-42', '12345678']) expect(json).not.toContain(v);
    expect(json).toContain(SECRET_MASK);
    expect(mask('dsn mysql://app:s3cret-app-passw0rd@db1/app, pw correct horse battery staple')).toBe(`dsn ${SECRET_MASK}, pw ${SECRET_MASK}`);
    expect(inv.secrets.map((s) => s.name)).toContain('vault_mysql_app_password');
  });
});

describe('in a native inventory too: group_vars/ next to it, !vault values in it', () => {
  it('decrypts both, and its vars refer to them', () => {
    const dir = path.join(tmp, 'native');
    mkdirSync(path.join(dir, 'group_vars', 'web'), { recursive: true });
    copyFileSync(path.join(fixtures, 'vault/group_vars/all/vault.yml'), path.join(dir, 'group_vars', 'web', 'vault.yml'));
    const inline = readFileSync(path.join(fixtures, 'vault/host_vars/db1.yml'), 'utf8').split('prod_token:')[0]!.split('api_token: ')[1]!;
    writeFileSync(
      path.join(dir, 'site.yml'),
      `hosts:\n  web1:\n    address: 127.0.0.1\n    groups: [web]\n    vars:\n      mysql_app_password: "{{ vault_mysql_app_password }}"\n      api_token: ${inline.replace(/\n {10}/g, '\n        ')}`,
    );
    const inv = loadInventory(path.join(dir, 'site.yml'), { env: {}, sshConfig: false, interactive: false, vaultPasswordFile: passwordFile });
    const vars = inv.hosts.get('web1')!.vars;
    expect(reveal(vars.mysql_app_password)).toBe('s3cret-app-passw0rd');
    expect(vars.mysql_app_password).toBeInstanceOf(Secret);
    expect(reveal(vars.api_token)).toBe('tok_0123456789abcdef');
  });
});

describe('the vault password: where it comes from', () => {
  const db1Password = (opts: LoadOptions) => {
    const inv = load(opts);
    return reveal(inv.hosts.get('db1')!.vars.vault_db_root_password);
  };

  it('--vault-password-file: a file (surrounding whitespace dropped)', () => {
    expect(db1Password({ vaultPasswordFile: passwordFile })).toBe('r00t-passw0rd-of-db');
  });

  it('--vault-password-file: an executable is run, without arguments; its output is the password', () => {
    const script = path.join(tmp, 'vault-pass.sh');
    writeFileSync(script, `#!/bin/sh\n[ $# -eq 0 ] || exit 9\nprintf 'correct horse battery staple\\r\\n'\n`);
    chmodSync(script, 0o700);
    expect(db1Password({ vaultPasswordFile: script })).toBe('r00t-passw0rd-of-db');
  });

  it(`$PROVISION_VAULT_PASSWORD`, () => {
    expect(db1Password({ env: { PROVISION_VAULT_PASSWORD: 'correct horse battery staple' } })).toBe('r00t-passw0rd-of-db');
  });

  it('none given and no terminal: one clear error naming the file that needs it', () => {
    const err = thrown(() => db1Password({}));
    expect(err.message).toBe(`${path.join(fixtures, 'vault/group_vars/all/vault.yml')}: is encrypted with ansible-vault, and no vault password was given`);
    expect(err.hint).toBe('pass --vault-password-file FILE, set $PROVISION_VAULT_PASSWORD, or run on a terminal to be asked');
  });

  it('a password script that fails: its exit code, never its output', () => {
    const script = path.join(tmp, 'failing.sh');
    writeFileSync(script, `#!/bin/sh\necho 'correct horse battery staple'\nexit 3\n`);
    chmodSync(script, 0o700);
    expect(thrown(() => db1Password({ vaultPasswordFile: script })).message).toBe(`--vault-password-file ${script}: the script exited with code 3`);
  });

  it('a missing or empty password file', () => {
    expect(thrown(() => db1Password({ vaultPasswordFile: path.join(tmp, 'nope') })).message).toBe(`--vault-password-file ${path.join(tmp, 'nope')}: no such file`);
    writeFileSync(path.join(tmp, 'empty'), '\n');
    expect(thrown(() => db1Password({ vaultPasswordFile: path.join(tmp, 'empty') })).message).toBe(`--vault-password-file ${path.join(tmp, 'empty')}: the vault password is empty`);
  });
});

describe('a wrong vault password', () => {
  const wrong = path.join(tmp, 'wrong-password');
  writeFileSync(wrong, 'Tr0ub4dor&3\n');

  it('names the file, shows no value', () => {
    const err = thrown(() => prepareHosts(load({ vaultPasswordFile: wrong }), ['db1']));
    expect(err.message).toBe(`${path.join(fixtures, 'vault/group_vars/all/vault.yml')}: the vault password from --vault-password-file ${wrong} does not decrypt it`);
    expect(err.hint).toBe('wrong password, or encrypted with another one');
  });

  it('an inline value: file:line:col and its var', () => {
    const dir = path.join(tmp, 'inline');
    mkdirSync(path.join(dir, 'host_vars'), { recursive: true });
    writeFileSync(path.join(dir, 'hosts'), 'db1 ansible_host=127.0.0.1\n');
    copyFileSync(path.join(fixtures, 'vault/host_vars/db1.yml'), path.join(dir, 'host_vars/db1.yml'));
    const inv = loadInventory(path.join(dir, 'hosts'), { env: {}, sshConfig: false, vaultPasswordFile: wrong, interactive: false });
    const err = thrown(() => inv.hosts.get('db1')!.vars.prod_token);
    expect(err.message).toBe(`${path.join(dir, 'host_vars/db1.yml')}:9:20: prod_token: the vault password from --vault-password-file ${wrong} does not decrypt it (vault id "prod")`);
  });
});

describe('only what the selected hosts use needs the password', () => {
  it('loading the inventory needs none', () => {
    expect(() => load()).not.toThrow();
  });

  it('a team vault encrypted with another password is never opened when its hosts are not selected', () => {
    const inv = load({ vaultPasswordFile: passwordFile });
    expect(() => prepareHosts(inv, ['db1', 'web1'])).not.toThrow();
    expect(() => prepareHosts(inv, ['other1'])).toThrow(`${path.join(fixtures, 'vault/group_vars/other/vault.yml')}: the vault password from --vault-password-file`);
  });

  it('inline !vault values are decrypted when read: `ping` (connection only) needs no password', () => {
    const dir = path.join(tmp, 'lazy-inline');
    mkdirSync(path.join(dir, 'host_vars'), { recursive: true });
    writeFileSync(path.join(dir, 'hosts'), 'db1 ansible_host=127.0.0.1\n');
    copyFileSync(path.join(fixtures, 'vault/host_vars/db1.yml'), path.join(dir, 'host_vars/db1.yml'));
    const inv = loadInventory(path.join(dir, 'hosts'), { env: {}, sshConfig: false, interactive: false });
    expect(() => prepareHosts(inv, ['db1'], { vars: false })).not.toThrow();
    expect(() => prepareHosts(inv, ['db1'])).toThrow('is encrypted with ansible-vault, and no vault password was given');
  });
});

describe('the CLI: a wrong vault password is bad input (exit 4), before any connection', () => {
  const { stderr, stdout } = captureOutput();
  const lines = () => stderr.join('').split('\n').filter(Boolean);

  it('the guard: with the right password, ping gets as far as connecting (closed port: exit 3)', async () => {
    expect(await main(['ping', '-i', inventory, '-l', 'db1', '--vault-password-file', passwordFile])).toBe(3);
  });

  it('the wrong password: exit 4, one error line and its hint, nothing on stdout, no value', async () => {
    const wrong = path.join(tmp, 'wrong-cli');
    writeFileSync(wrong, 'Tr0ub4dor&3\n');
    expect(await main(['ping', '-i', inventory, '-l', 'db1', '--vault-password-file', wrong])).toBe(4);
    expect(lines()).toEqual([
      `provision: error: ${path.join(fixtures, 'vault/group_vars/all/vault.yml')}: the vault password from --vault-password-file ${wrong} does not decrypt it`,
      'provision: hint: wrong password, or encrypted with another one',
    ]);
    expect(stdout.join('')).toBe('');
  });

  it('`provision inventory --vars` shows vault values masked', async () => {
    expect(await main(['inventory', '-i', inventory, '-l', 'db1', '--vars', '--json', '--vault-password-file', passwordFile])).toBe(0);
    const out = stdout.join('');
    const report = JSON.parse(out) as { hosts: Record<string, { vars: Record<string, unknown>; connection: Record<string, unknown> }> };
    expect(report.hosts.db1!.vars.mysql_app_password).toBe(SECRET_MASK);
    expect(report.hosts.db1!.vars.app_name).toBe('shop');
    expect(report.hosts.db1!.connection.becomePassword).toBe(true);
    expect(out).not.toMatch(/s3cret|r00t|tok_0123|sudo-passw0rd|correct horse/);
  });
});

describe('on a terminal, the vault password is asked (without echo, by a shell that restores echo on Ctrl-C)', () => {
  it('typed at the prompt under a pseudo-terminal', async () => {
    // util-linux `script` gives the CLI a terminal and types its own stdin into it.
    const line = cliLine(['inventory', '-i', inventory, '-l', 'db1', '--vars', '--json']);
    const r = await bash(`printf '%s\\n' 'correct horse battery staple' | script -qec ${quote(line)} /dev/null`, undefined, 120_000);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Vault password: ');
    const json = r.stdout.slice(r.stdout.indexOf('{'), r.stdout.lastIndexOf('}') + 1);
    expect((JSON.parse(json) as { hosts: Record<string, { vars: Record<string, unknown> }> }).hosts.db1!.vars.vault_db_root_password).toBe(SECRET_MASK);
  });
});

describe('the vault format', () => {
  const text = readFileSync(path.join(fixtures, 'vault/group_vars/db/vault.yml'), 'utf8');
  const password = Buffer.from('correct horse battery staple');

  it('reads the header (1.2 with its vault id) and the body', () => {
    const v = parseVaultText(text);
    expect(v).toMatchObject({ version: '1.2', cipher: 'AES256', vaultId: 'prod' });
    expect(v.salt.length).toBe(32);
    expect(v.hmac.length).toBe(32);
    expect(decryptVault(text, password).toString()).toBe('vault_db_root_password: r00t-passw0rd-of-db\n');
  });

  it('a changed ciphertext fails its HMAC, as a wrong password does', () => {
    const lines = text.split('\n');
    const body = Buffer.from(lines.slice(1).join(''), 'hex').toString('latin1').split('\n');
    const flipped = body[2]!.slice(0, -1) + (body[2]!.endsWith('0') ? '1' : '0');
    const tampered = [lines[0], Buffer.from([body[0], body[1], flipped].join('\n'), 'latin1').toString('hex')].join('\n');
    expect(() => decryptVault(tampered, password)).toThrow(VaultPasswordError);
    expect(() => decryptVault(text, Buffer.from('wrong'))).toThrow(VaultPasswordError);
  });

  it.each([
    ['$ANSIBLE_VAULT;1.1;AES128\n00', 'cipher AES128 is not supported (AES256 is)'],
    ['$ANSIBLE_VAULT;2.0;AES256\n00', 'vault format 2.0 is not supported (1.1 and 1.2 are)'],
    ['$ANSIBLE_VAULT;1.1;AES256\nzz', 'the body is not hexadecimal'],
    ['$ANSIBLE_VAULT;1.1;AES256\n' + Buffer.from('aa\nbb').toString('hex'), 'the body is not salt, HMAC and ciphertext'],
  ])('refuses %j: %s', (t, message) => {
    expect(() => parseVaultText(t)).toThrow(new VaultFormatError(message));
  });
});
