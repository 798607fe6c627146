/**
 * `provision ping` reports every host, each on its own line, whatever one of them does: a host whose
 * sudo refuses the become password is a row of its own, not an error that ends the command and
 * hides the others' answers.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { ed25519KeyPair } from '../../../src/util/ssh-keys.js';
import { captureOutput } from '../helpers/output.js';
import { fakeHost, type FakeHost } from '../transport/fake-host.js';

let good: FakeHost;
let refused: FakeHost;
let stuck: FakeHost;
let dir: string;
let inventory: string;

beforeAll(async () => {
  good = await fakeHost({ asks: 'always', password: 'correct horse', passwordEnv: 'PROVISION_TEST_PING_GOOD' });
  refused = await fakeHost({ asks: 'always', password: 'correct horse', passwordEnv: 'PROVISION_TEST_PING_REFUSED' });
  process.env.PROVISION_TEST_PING_REFUSED = 'battery staple';
  stuck = await fakeHost({ asks: 'never', password: 'correct horse', passwordEnv: 'PROVISION_TEST_PING_STUCK', stuckOn: 'id -un' });
  dir = mkdtempSync(path.join(tmpdir(), 'provision-ping-'));
  const key = path.join(dir, 'id_ed25519');
  writeFileSync(key, ed25519KeyPair().private);
  chmodSync(key, 0o600);
  inventory = path.join(dir, 'inventory.yml');
  const host = (name: string, h: FakeHost, env: string, extra = '') =>
    `  ${name}:\n    address: 127.0.0.1\n    port: ${h.host.connection.port}\n    user: alice\n    identity_file: ${key}\n` +
    `    known_hosts: ${path.join(dir, 'known_hosts')}\n    accept_new_host_keys: true\n    become: true\n    become_password_env: ${env}\n    connect_timeout: 5\n${extra}`;
  writeFileSync(inventory, `hosts:\n${host('good', good, 'PROVISION_TEST_PING_GOOD')}${host('refused', refused, 'PROVISION_TEST_PING_REFUSED')}` +
      // channel: exec: the fake host never answers an exec request naming `id -un` (stuckOn); through the
      // long-lived channel the check would be a frame, which it does not stop.
      host('stuck', stuck, 'PROVISION_TEST_PING_STUCK', '    probe_timeout: 5\n    channel: exec\n'));
});

afterAll(async () => {
  await good?.close();
  await refused?.close();
  await stuck?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('provision ping', () => {
  const out = captureOutput();
  it('a host whose sudo refuses the password, and one whose check never ends, are rows of their own; the other host still answers', { timeout: 60_000 }, async () => {
    const code = await main(['ping', '-i', inventory, '--json']);
    const rows = JSON.parse(out.stdout.join('')) as { host: string; ok: boolean; user?: string }[];
    expect(rows.map((r) => [r.host, r.ok]).sort()).toEqual([
      ['good', true],
      ['refused', false],
      ['stuck', false],
    ]);
    expect(rows.find((r) => r.host === 'stuck')).toMatchObject({ ok: false, error: expect.stringMatching(/probe_timeout|did not finish|timed out/) });
    expect(rows.find((r) => r.host === 'good')!.user).toBeTruthy();
    expect(JSON.stringify(rows)).toMatch(/refused the become password/);
    expect(code).not.toBe(0);
  });
});
