/**
 * A converged host costs one round trip after connecting: the facts' script also runs the state read
 * the host kept from the last run (facts/remembered.ts), and the run takes its answers when it is the
 * script it would send. Against the in-process SSH server (commands run in this machine's sh), whose
 * exec requests are counted: one channel and one exec each.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../../src/cli/exit-codes.js';
import { loadPlaybook, runPlaybook, SshConnector } from '../../../src/executor/index.js';
import { batchTemplate, gatherFactsRemembering, ProbeTimeoutError, runProbes } from '../../../src/facts/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { SshConnection } from '../../../src/transport/ssh.js';
import { clearRegisteredSecrets, registerSecret } from '../../../src/util/secrets.js';
import { fakeHost, type FakeHost } from '../transport/fake-host.js';
import { LocalConnection } from './local-connection.js';

let fake: FakeHost;
let tmp: string;
let stateFile: string;
let inventoryFile: string;

beforeAll(async () => {
  fake = await fakeHost({ asks: 'never', password: 'pw-for-one-round-trip' });
  tmp = mkdtempSync(path.join(tmpdir(), 'provision-one-rt-'));
  stateFile = path.join(tmp, 'state', 'state-read');
  const c = fake.host.connection;
  inventoryFile = path.join(tmp, 'inv.yml');
  writeFileSync(
    inventoryFile,
    `hosts:\n  fake: { address: 127.0.0.1, port: ${c.port}, user: alice, become: true, become_password_env: ${c.becomePasswordEnv}, known_hosts: ${c.knownHosts}, accept_new_host_keys: true }\n`,
  );
});
afterAll(async () => {
  await fake.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** A play of two files under the scratch folder, plus `extra` tasks. */
function playbook(extra = ''): string {
  const file = path.join(tmp, `play-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(
    file,
    `- name: files
  hosts: all
  tasks:
    - { name: a file, copy: { dest: ${tmp}/out-a.txt, content: "hello\\n" } }
    - { name: a folder, file: { path: ${tmp}/out-d, state: directory } }
${extra}`,
  );
  return file;
}

/** A run through SSH with the state read kept in the scratch file; the execs it cost the host. */
async function run(play: string, check = false) {
  const inventory = loadInventory(inventoryFile);
  const before = fake.execs().length;
  const reporter = new MemoryReporter();
  const connector = new SshConnector(inventory, { stateRead: check ? 'use' : 'keep', stateReadFile: stateFile });
  const res = await runPlaybook({ inventory, playbook: loadPlaybook(play), check, connector, reporter });
  return { res, execs: fake.execs().slice(before), counts: res.hosts['fake']!.counts };
}

describe('one round trip per converged host', () => {
  it('a no-change run is one exec request after connecting (facts and every state read); main needed two', async () => {
    const play = playbook();
    const first = await run(play);
    expect(first.counts).toMatchObject({ changed: 2, failed: 0 });
    const second = await run(play);
    expect(second.counts).toMatchObject({ ok: 2, changed: 0, failed: 0 });
    expect(exitCodeOf(second.res)).toBe(0);
    expect(second.execs).toHaveLength(1);
    expect(second.res.roundTrips['fake']).toBe(1);
    expect(existsSync(stateFile)).toBe(true);
  });

  it('the kept read answers with the state as it is now: a file changed behind our back is seen and put back', async () => {
    const play = playbook();
    await run(play);
    writeFileSync(path.join(tmp, 'out-a.txt'), 'changed by hand\n');
    const r = await run(play);
    expect(r.counts).toMatchObject({ changed: 1, ok: 1 });
    expect(readFileSync(path.join(tmp, 'out-a.txt'), 'utf8')).toBe('hello\n');
    // Facts with the kept read, then the change: no read of its own before it.
    expect(r.execs.length).toBeLessThan(4);
  });

  it('a playbook that reads other state pays the second round trip, and is then kept in its turn', async () => {
    await run(playbook());
    const other = playbook(`    - { name: another, file: { path: ${tmp}/out-d2, state: directory } }\n`);
    const first = await run(other);
    expect(first.counts).toMatchObject({ changed: 1, failed: 0 });
    const again = await run(other);
    expect(again.counts).toMatchObject({ changed: 0, failed: 0 });
    expect(again.execs).toHaveLength(1);
    const changedPlay = await run(playbook());
    expect(changedPlay.counts).toMatchObject({ ok: 2, changed: 0 });
    expect(changedPlay.execs).toHaveLength(2);
  });

  it('a kept read that others could have written is not run (group-writable): the run reads for itself, right', async () => {
    const play = playbook();
    await run(play);
    chmodSync(stateFile, 0o620);
    writeFileSync(stateFile, 'touch ' + path.join(tmp, 'planted') + '\n');
    const r = await run(play);
    expect(existsSync(path.join(tmp, 'planted'))).toBe(false);
    expect(r.counts).toMatchObject({ ok: 2, changed: 0 });
    expect(r.execs).toHaveLength(2);
  });

  it('--check uses the kept read but never writes it', async () => {
    rmSync(stateFile, { force: true });
    const r = await run(playbook(), true);
    expect(r.counts).toMatchObject({ failed: 0 });
    expect(existsSync(stateFile)).toBe(false);
  });
});

describe('what is kept', () => {
  it('a read whose script carries a secret is never kept on the host; one without is', async () => {
    const file = path.join(tmp, 'kept', 'state-read');
    const secret = 'kept-secret-value-123';
    registerSecret(secret);
    try {
      const got = await runProbes(new LocalConnection(), [{ key: 'p', script: `echo ${secret} >/dev/null; echo hi` }], false, { keepIn: file });
      expect(got.get('p')).toEqual({ stdout: 'hi\n', code: 0 });
      expect(existsSync(file)).toBe(false);
      await runProbes(new LocalConnection(), [{ key: 'p', script: 'echo hi' }], false, { keepIn: file });
      expect(readFileSync(file, 'utf8')).toContain('echo hi');
    } finally {
      clearRegisteredSecrets();
    }
  });
});

describe('a kept read that hangs', () => {
  it('is bounded with the facts: the facts stand, the read is made again under its own bound and fails naming the probe', async () => {
    const hang = { key: 'cmd:hangs', script: 'sleep 600' };
    const probes = [{ key: 'before', script: 'echo before' }, hang];
    const file = path.join(tmp, 'hang', 'state-read');
    mkdirSync(path.dirname(file), { mode: 0o700 });
    writeFileSync(file, `${batchTemplate(probes)}\n`, { mode: 0o600 });
    const conn = await SshConnection.connect({ ...fake.host, connection: { ...fake.host.connection, probeTimeoutMs: 3000 } });
    try {
      const { facts, remembered } = await gatherFactsRemembering(conn, file);
      expect(facts.os.id).not.toBe('');
      expect(remembered?.timeout).toBeDefined();
      const err = await runProbes(conn, probes, true, { remembered }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProbeTimeoutError);
      expect((err as Error).message).toContain('probe "cmd:hangs" did not finish within 3s (probe_timeout)');
      expect((err as ProbeTimeoutError).done.get('before')).toEqual({ stdout: 'before\n', code: 0 });
      expect(conn.roundTrips).toBe(2);
    } finally {
      conn.close();
    }
  });
});
