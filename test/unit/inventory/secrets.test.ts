import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory, secretEnvName } from '../../../src/inventory/index.js';
import { mask, maskDeep, Secret, SECRET_MASK } from '../../../src/util/secrets.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-secrets-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const inventory = `secrets_file: vault/site.secrets.yml
vars:
  admin_email: ops@example.net
groups:
  db:
    hosts: [db1]
    vars:
      db_password: !secret db_password
hosts:
  db1:
    address: 10.0.0.21
    vars:
      api:
        token: !secret api_token
        scopes: [read, write]
      replicas: [!secret db_password]
`;

/** The inventory above, with its secrets file at mode 0600 (git does not keep modes, so it is made here). */
function write(secrets: string): string {
  const vault = path.join(tmp, 'vault');
  mkdirSync(vault, { recursive: true });
  writeFileSync(path.join(tmp, 'site.yml'), inventory);
  writeFileSync(path.join(vault, 'site.secrets.yml'), secrets);
  chmodSync(path.join(vault, 'site.secrets.yml'), 0o600);
  return path.join(tmp, 'site.yml');
}

describe('!secret in the inventory', () => {
  const file = write('db_password: correct-horse-battery\napi_token: tok_0123456789abcdef\n');

  it('resolves from the secrets file (relative to the inventory) into Secret objects', () => {
    const inv = loadInventory(file, { env: {} });
    const vars = inv.hosts.get('db1')!.vars;
    expect(vars.db_password).toBeInstanceOf(Secret);
    expect((vars.db_password as Secret).reveal()).toBe('correct-horse-battery');
    const api = vars.api as { token: Secret; scopes: string[] };
    expect(api.token).toBeInstanceOf(Secret);
    expect(api.token.reveal()).toBe('tok_0123456789abcdef');
    expect(api.scopes).toEqual(['read', 'write']);
    // one Secret per name, wherever it is used
    expect((vars.replicas as Secret[])[0]).toBe(vars.db_password);
    expect(inv.secrets.map((s) => s.name).sort()).toEqual(['api_token', 'db_password']);
  });

  it('PROVISION_SECRET_<NAME> wins over the secrets file', () => {
    expect(secretEnvName('db_password')).toBe('PROVISION_SECRET_DB_PASSWORD');
    expect(secretEnvName('api-token.v2')).toBe('PROVISION_SECRET_API_TOKEN_V2');
    const inv = loadInventory(file, { env: { PROVISION_SECRET_DB_PASSWORD: 'from-the-environment' } });
    const vars = inv.hosts.get('db1')!.vars;
    expect((vars.db_password as Secret).reveal()).toBe('from-the-environment');
    expect((vars.api as { token: Secret }).token.reveal()).toBe('tok_0123456789abcdef');
  });

  it('the environment alone is enough when the secrets file lacks the name', () => {
    const f = write('api_token: tok_0123456789abcdef\n');
    const inv = loadInventory(f, { env: { PROVISION_SECRET_DB_PASSWORD: 'only-in-the-env' } });
    expect((inv.hosts.get('db1')!.vars.db_password as Secret).reveal()).toBe('only-in-the-env');
    write('db_password: correct-horse-battery\napi_token: tok_0123456789abcdef\n');
  });

  it('never shows the value: JSON, String(), inspect, maskDeep and mask', () => {
    const inv = loadInventory(file, { env: {} });
    const vars = inv.hosts.get('db1')!.vars;
    const json = JSON.stringify(vars);
    expect(json).not.toContain('correct-horse-battery');
    expect(json).not.toContain('tok_0123456789abcdef');
    expect(json).toContain(SECRET_MASK);
    expect(JSON.stringify([...inv.hosts.values()])).not.toContain('correct-horse-battery');
    expect(String(vars.db_password)).toBe(SECRET_MASK);
    expect(`${vars.db_password}`).toBe(SECRET_MASK);
    expect(inspect(vars, { depth: 5 })).not.toContain('correct-horse-battery');
    expect(JSON.stringify(maskDeep(vars))).not.toContain('correct-horse-battery');
    expect(mask('psql "password=correct-horse-battery" && curl -H "Bearer tok_0123456789abcdef"')).toBe(
      `psql "password=${SECRET_MASK}" && curl -H "Bearer ${SECRET_MASK}"`,
    );
  });
});
