/**
 * "Exactly these keys" for the user the run logs in as (issue 12, item 10), on a real lab host:
 * a key list that leaves out the key the run logs in with is refused before anything is applied,
 * naming the key's fingerprint, whether the run logs in with its identity file or an ssh-agent;
 * the host's authorized_keys is untouched and the host still answers. A list that keeps the key
 * is applied.
 *
 *     npx vitest run --project lab test/integration/authorized-keys-lockout.test.ts
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ed25519KeyPair } from '../../src/util/ssh-keys.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { provision } from '../e2e/lab-env.ts';
import { failures, pollUntil, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'fil';
const PREFIX = '10.92.0';
const HOST = 'web-01';
let dir: string;
let agent: ChildProcess | undefined;

const OTHER_KEY = ed25519KeyPair({ comment: 'someone-else' }).public.trim();

/** ssh-keygen's own fingerprint of the lab key, so the test does not trust our computation of it. */
const labFingerprint = () => spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', labPaths(NAME).sshPublicKey], { encoding: 'utf8' }).stdout.split(' ')[1]!;

const keysPlay = (keys: string[]) => `
- name: root's keys
  hosts: all
  tasks:
    - name: exactly these keys for root
      user: { name: root, authorized_keys: ${JSON.stringify(keys)} }
`;

async function rootKeys(): Promise<string> {
  const r = await hostExec(HOST, ['cat', '/root/.ssh/authorized_keys'], NAME);
  if (r.code !== 0) throw new Error(`cannot read root's keys: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-fil-keys-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: [HOST], pebble: false });
});

afterAll(async () => {
  if (agent?.pid) process.kill(agent.pid);
  await labDown(NAME);
});

describe("replacing the run's own user's authorized_keys", () => {
  it('without the identity file key: refused before anything is applied, naming the fingerprint', async () => {
    const before = await rootKeys();
    const inv = writeInventory(dir, NAME, PREFIX);
    const r = await provision(['-i', inv, '-p', writePlaybook(dir, keysPlay([OTHER_KEY])), '--limit', HOST, '--json'], { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    const msg = String(failures(r, HOST)[0]?.msg);
    expect(msg).toContain(`leaves out the key this run logs in with, ${labFingerprint()} (identity file ${labPaths(NAME).sshKey})`);
    expect(msg).toContain('allow_removing_connection_key: true');
    expect(await rootKeys()).toBe(before);
  });

  it('through an ssh-agent holding the key: refused the same way', async () => {
    const socket = path.join(dir, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    expect(await pollUntil(async () => spawnSync('ssh-add', ['-l'], { env: { SSH_AUTH_SOCK: socket } }).status !== 2, 10_000)).toBe(true);
    expect(spawnSync('ssh-add', [labPaths(NAME).sshKey], { env: { SSH_AUTH_SOCK: socket } }).status).toBe(0);
    // The same inventory, logging in through the agent only.
    const inv = writeInventory(dir, NAME, PREFIX);
    writeFileSync(inv, readFileSync(inv, 'utf8').replace(/ {2}identity_file: .*\n/, `  ssh_agent: ${socket}\n`));
    const before = await rootKeys();
    const r = await provision(['-i', inv, '-p', writePlaybook(dir, keysPlay([OTHER_KEY])), '--limit', HOST, '--json'], { timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    expect(String(failures(r, HOST)[0]?.msg)).toContain(`${labFingerprint()} (ssh-agent)`);
    expect(await rootKeys()).toBe(before);
  });

  it('a list that keeps the key is applied, and the next run still logs in', async () => {
    const inv = writeInventory(dir, NAME, PREFIX);
    const labKey = readFileSync(labPaths(NAME).sshPublicKey, 'utf8').trim();
    const play = writePlaybook(dir, keysPlay([labKey, OTHER_KEY]));
    const first = await provision(['-i', inv, '-p', play, '--limit', HOST, '--json'], { timeoutMs: 120_000 });
    expect(failures(first)).toEqual([]);
    expect(first.code).toBe(2);
    expect(await rootKeys()).toBe(`${labKey}\n${OTHER_KEY}\n`);
    const second = await provision(['-i', inv, '-p', play, '--limit', HOST, '--json'], { timeoutMs: 120_000 });
    expect(second.code).toBe(0);
  });
});
