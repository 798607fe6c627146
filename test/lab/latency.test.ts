// @vitest-environment node
/**
 * The benchmark's latency (bench/latency.mjs) on a real sshd: while it is on, SSH to the host goes
 * through the relay running as nobody (host key unchanged, the inventory's address kept); afterwards,
 * after an interrupt, and after a benchmark killed outright (the next run's cleanup), no rule of it is
 * left in the nat table and no relay runs. No timing is asserted: who holds the connection is.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupStale, withLatency } from '../../bench/latency.mjs';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';

const NAME = 'scale';
const HOST = '10.98.0.21';
const MIN = 60_000;
const ROOT = path.resolve(import.meta.dirname, '../..');
const supported = process.platform === 'linux' && process.getuid?.() === 0;

const ourRules = () => spawnSync('iptables', ['-w', '-t', 'nat', '-S', 'OUTPUT'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes('provision-bench-relay'));
const relays = () => spawnSync('pgrep', ['-f', 'bench/relay.mjs'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

function ssh(cmd: string): Promise<{ code: number; stdout: string }> {
  const p = labPaths(NAME);
  return new Promise((resolve) => {
    execFile('ssh', ['-i', p.sshKey, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${p.knownHosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `root@${HOST}`, cmd], { timeout: 60_000 }, (err, stdout) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 255) : 0, stdout: String(stdout) }));
  });
}

describe.skipIf(!supported)('latency through the relay (bench/latency.mjs)', () => {
  let stateFile: string;

  beforeAll(async () => {
    await labDown(NAME);
    await labUp({ name: NAME, subnet: '10.98.0.0/24', scaleHosts: 1 });
    stateFile = path.join(mkdtempSync(path.join(tmpdir(), 'relay-')), 'rules.json');
  }, 5 * MIN);

  afterAll(async () => {
    cleanupStale(stateFile);
    await labDown(NAME);
  }, 3 * MIN);

  it('lets SSH to the host work through it, with the host key unchanged, and removes its rule after', async () => {
    const r = await withLatency({ rttMs: 40, addresses: [HOST], stateFile, firstPort: 41900 }, async () => {
      expect(ourRules()).toHaveLength(1);
      expect(JSON.parse(readFileSync(stateFile, 'utf8')).rules).toHaveLength(1); // recorded for a killed run's cleanup
      return ssh('hostname'); // StrictHostKeyChecking=yes against the lab's known_hosts
    });
    expect(r).toEqual({ code: 0, stdout: 'scale-001\n' });
    expect(ourRules()).toEqual([]);
    expect(existsSync(stateFile)).toBe(false);
  }, 3 * MIN);

  it('holds the session in the relay: a connection from the relay to the host exists while ssh runs', async () => {
    await withLatency({ rttMs: 40, addresses: [HOST], stateFile, firstPort: 41900 }, async () => {
      const session = ssh('sleep 3');
      await new Promise((r) => setTimeout(r, 1500)); // the session is up (not a measurement)
      const conns = spawnSync('ss', ['-Htnp', 'dst', `${HOST}:22`], { encoding: 'utf8' }).stdout;
      const pids = relays();
      expect(pids.length).toBe(1);
      expect(conns).toContain(`pid=${pids[0]},`);
      expect((await session).code).toBe(0);
    });
    expect(relays()).toEqual([]);
  }, 3 * MIN);

  it('leaves nothing when the benchmark is interrupted, and the next run cleans up after one killed outright', async () => {
    const script = `import { withLatency } from ${JSON.stringify(path.join(ROOT, 'bench/latency.mjs'))};
await withLatency({ rttMs: 40, addresses: [${JSON.stringify(HOST)}], stateFile: ${JSON.stringify(stateFile)}, firstPort: 41900 }, () => { console.log('on'); return new Promise((r) => setTimeout(r, 120000)); });`;
    const start = async () => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d) => String(d).includes('on') && resolve());
        child.on('exit', (c) => reject(new Error(`exited ${c} before the relay was on`)));
      });
      return child;
    };
    const interrupted = await start();
    expect(ourRules()).toHaveLength(1);
    interrupted.kill('SIGINT');
    await new Promise((r) => interrupted.on('exit', r));
    expect(ourRules()).toEqual([]);
    expect(relays()).toEqual([]);

    const killed = await start();
    killed.kill('SIGKILL');
    await new Promise((r) => killed.on('exit', r));
    expect(ourRules()).toHaveLength(1); // nothing could run in a killed process…
    cleanupStale(stateFile); // …so the next benchmark run removes what it recorded
    expect(ourRules()).toEqual([]);
    expect(relays()).toEqual([]);
  }, 3 * MIN);
});
