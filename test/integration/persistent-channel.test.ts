/**
 * The long-lived channel (the default; src/transport/channel.ts) against a real
 * Debian 12 host of an instance of its own: its dash and coreutils `head -c` take exactly the frame's
 * bytes, results equal exec's, a command past its bound is stopped with everything it started while
 * the reader goes on, and a run that changes things through the CLI converges and then changes nothing.
 * (sudo with and without a password through the reader: test/integration/become.test.ts with the setting on.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/inventory/index.ts';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { CommandTimeoutError, SshConnection } from '../../src/transport/index.ts';
import { provision } from '../e2e/lab-env.ts';
import { recap, writeInventory, writePlaybook } from './faults-helpers.ts';
import { bothStreamsPastTheWindow } from '../unit/helpers/window-stall.ts';

const NAME = 'k6c';
const PREFIX = '10.97.0';
let dir: string;
let inv: string;
const conns: SshConnection[] = [];

async function connect(channel: 'exec' | 'persistent'): Promise<SshConnection> {
  const c = await SshConnection.connect(loadInventory(inv).hosts.get('web-01')!, undefined, channel);
  conns.push(c);
  return c;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-k6c-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['web-01'], pebble: false });
  inv = writeInventory(dir, NAME, PREFIX, { hosts: `  web-01: { address: ${PREFIX}.11, groups: [web] }\n` });
});

afterAll(async () => {
  for (const c of conns) c.close();
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

const CASES: { command: string; stdin?: string | Buffer }[] = [
  { command: 'echo hello; id -un' },
  { command: 'printf "no newline"; printf "err" >&2; exit 3' },
  { command: 'cat', stdin: '@@provision-end-0123 0\n#0123\n0 5 5\n' },
  { command: 'cat | od -An -tx1', stdin: Buffer.from([1, 2, 3, 0xc3, 0xa9, 0x7f, 0x0a, 0xff, 0xfe]) },
  { command: 'head -c 3; echo; cat | wc -c', stdin: 'abcdef'.repeat(100_000) },
  { command: 'head -c 2', stdin: 'xy-left-over\n0 0 0\n' },
  { command: 'wc -c', stdin: 'é'.repeat(5000) },
  { command: 'echo out; echo err >&2; false' },
];

describe('persistent channel on a real host', () => {
  it('results equal exec\'s, with the stdin each command was given', async () => {
    const exec = await connect('exec');
    const expected = [];
    for (const k of CASES) expected.push(await exec.exec(k.command, { stdin: k.stdin }));
    const c = await connect('persistent');
    for (let round = 0; round < 2; round++) for (const [i, k] of CASES.entries()) expect(await c.exec(k.command, { stdin: k.stdin }), k.command).toEqual(expected[i]);
  });

  it('a command past its bound is stopped on the host with what it started; the next runs on the same reader', async () => {
    const c = await connect('persistent');
    await c.exec('true');
    const readers = async () => (await hostExec('web-01', ['sh', '-c', "pgrep -fc 'while read -r n s [i]' || true"], NAME)).stdout.trim();
    await c.exec('true');
    // The first test's connection (and its reader) may still be open: counted, not assumed.
    const before = Number(await readers());
    expect(before).toBeGreaterThanOrEqual(1);
    const err = await c.exec('sleep 300 & sleep 301; wait', { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect((await hostExec('web-01', ['sh', '-c', "pgrep -c -f '^sleep 30[01]$' || true"], NAME)).stdout.trim()).toBe('0');
    expect(await c.exec('echo after')).toEqual({ stdout: 'after\n', stderr: '', code: 0 });
    expect(Number(await readers())).toBe(before);
  });

  it('OpenSSH sends both streams when the window opens again: no byte lost (the in-process server lost stderr\'s)', async () => {
    const h = loadInventory(inv).hosts.get('web-01')!;
    const client = new ssh2.Client();
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('ready', () => resolve()).once('error', reject);
        const c = h.connection;
        client.connect({ host: h.address, port: c.port, username: c.user, privateKey: readFileSync(c.identityFile!), hostVerifier: () => true });
      });
      const r = await bothStreamsPastTheWindow(client);
      expect({ ended: r.ended, out: r.out, err: r.err }).toEqual({ ended: true, out: r.expected, err: r.expected });
    } finally {
      client.end();
    }
  });

  it('a run that changes things converges through the reader, then changes nothing', async () => {
    const tasks = Array.from({ length: 6 }, (_, i) => `    - { name: file ${i}, copy: { dest: /srv/k6c/f${i}, content: "file ${i}\\n", make_parents: true } }`).join('\n');
    const pb = writePlaybook(dir, `- name: files\n  hosts: all\n  tasks:\n${tasks}\n    - { name: cmd, command: { cmd: "touch /srv/k6c/done", creates: /srv/k6c/done } }\n`);
    const env = { PROVISION_CHANNEL: 'persistent' };
    const first = await provision(['-i', inv, '-p', pb, '--json'], { env });
    expect(recap(first)['web-01']).toMatchObject({ changed: 7, failed: 0 });
    const second = await provision(['-i', inv, '-p', pb, '--json'], { env });
    expect(recap(second)['web-01']).toMatchObject({ changed: 0, failed: 0 });
    expect(second.code).toBe(0);
    expect((await hostExec('web-01', ['sh', '-c', 'cat /srv/k6c/f3'], NAME)).stdout).toBe('file 3\n');
  });
});
