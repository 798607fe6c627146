// @vitest-environment node
// End to end: a separate small lab instance, real containers, real sshd, real apt.
import { writeFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hostExec, inClient, labDown, labHosts, labPaths, labStatus, labUp, leftovers,
  restoreHost, snapshotHost, startHost, stopHost,
} from '../../src/lab/index.ts';
import { readState, type LabState } from '../../src/lab/state.ts';

const NAME = 't1';
const SUBNET = '10.78.0.0/24';
const HOST = 'web-01';
const MIN = 60_000;
const supported = process.platform === 'linux' && process.getuid?.() === 0;

function ssh(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('ssh', args, { timeout: 30_000 }, (err, stdout) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 255) : 0, stdout: String(stdout) }));
  });
}

function sshOpts(knownHosts: string): string[] {
  const p = labPaths(NAME);
  return ['-i', p.sshKey, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5'];
}

describe.skipIf(!supported)('lab instance t1 (end to end)', () => {
  let address: string;

  beforeAll(async () => {
    await labDown(NAME); // a previous run that crashed must not leak into this one
    const r = await labUp({ name: NAME, subnet: SUBNET, only: [HOST], pebble: true });
    address = r.hosts[HOST]!;
  }, 10 * MIN);

  afterAll(async () => {
    await labDown(NAME);
  }, 3 * MIN);

  it('exposes the layout', () => {
    expect(labHosts(NAME)).toEqual({ [HOST]: '10.78.0.11' });
    const p = labPaths(NAME);
    expect(p).toMatchObject({ gateway: '10.78.0.1', bridge: 'provlab-t1', acmeDirectory: 'https://10.78.0.1:14000/dir' });
  });

  it('logs in over SSH with host-key verification through the lab known_hosts only', async () => {
    const p = labPaths(NAME);
    const good = await ssh([...sshOpts(p.knownHosts), `root@${address}`, 'hostname']);
    expect(good).toEqual({ code: 0, stdout: `${HOST}\n` });

    // Same address, somebody else's key: ssh must refuse.
    const dir = mkdtempSync(join(tmpdir(), 'lab-kh-'));
    const wrong = join(dir, 'known_hosts');
    const otherKey = readFileSync(p.sshPublicKey, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    writeFileSync(wrong, `${address} ${otherKey}\n`);
    expect((await ssh([...sshOpts(wrong), `root@${address}`, 'true'])).code).not.toBe(0);
    // And an empty known_hosts is refused too (no trust on first use).
    writeFileSync(wrong, '');
    expect((await ssh([...sshOpts(wrong), `root@${address}`, 'true'])).code).not.toBe(0);
  }, 2 * MIN);

  it('runs systemd fully', async () => {
    const r = await hostExec(HOST, ['systemctl', 'is-system-running', '--wait'], NAME, { timeoutMs: MIN });
    expect(['running', 'degraded']).toContain(r.stdout.trim());
    expect((await hostExec(HOST, ['systemctl', 'is-active', 'ssh'], NAME)).stdout.trim()).toBe('active');
  }, 2 * MIN);

  it('lets a host set its own network sysctls, and none of the kernel\'s (they are the machine\'s)', async () => {
    // Its network namespace is its own, like a VM's network stack: the common role's hardening sets these.
    const net = await hostExec(HOST, ['sysctl', '-w', 'net.ipv4.conf.all.send_redirects=0'], NAME);
    expect(net.code, net.stderr).toBe(0);
    const kernel = await hostExec(HOST, ['sysctl', '-w', 'kernel.kptr_restrict=2'], NAME);
    expect(kernel.code).not.toBe(0);
    expect(kernel.stderr).toMatch(/permission denied|read-only/i);
  }, MIN);

  it('reaches the Debian mirror through the lab proxy (and nothing else)', async () => {
    const r = await hostExec(HOST, ['apt-get', 'update'], NAME, { timeoutMs: 4 * MIN });
    expect(r.code, r.stderr).toBe(0);
    // The security suite too, as on a real Debian host (from the machine's sources, or beside its mirror).
    expect(r.stdout).toMatch(/bookworm-security/);
    // Any other destination is refused by the proxy's filter before it resolves or connects.
    const p = labPaths(NAME);
    const other = await inClient(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', p.proxyUrl, 'http://not-a-mirror.invalid/'], NAME, { timeoutMs: 30_000 });
    expect(other.stdout).toBe('403');
  }, 5 * MIN);

  it('keeps the daily scans the common role installs out of the tests (due once a year, like apt\'s timers)', async () => {
    const install = await hostExec(HOST, ['sh', '-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chkrootkit'], NAME, { timeoutMs: 4 * MIN });
    expect(install.code, install.stderr).toBe(0);
    // Packaged as 30 min after boot, then daily: with the lab's drop-in, only a calendar date at year's end.
    const timer = await hostExec(HOST, ['systemctl', 'show', 'chkrootkit.timer', '-p', 'TimersMonotonic', '-p', 'TimersCalendar'], NAME);
    expect(timer.stdout).toMatch(/^TimersCalendar=\{ OnCalendar=\*-12-31 03:00:00 ;/m);
    expect(timer.stdout).not.toMatch(/OnBootUSec|OnUnitActiveUSec/);
  }, 5 * MIN);

  it('serves the ACME directory to a client trusting the lab CA', async () => {
    const p = labPaths(NAME);
    const r = await inClient(['curl', '-sS', '--cacert', p.pebbleCa, p.acmeDirectory], NAME, { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('newAccount');
  }, MIN);

  it('restores a snapshot', async () => {
    expect((await hostExec(HOST, ['sh', '-c', 'echo converged > /root/marker'], NAME)).code).toBe(0);
    await snapshotHost(HOST, 'converged', NAME);
    expect((await hostExec(HOST, ['sh', '-c', 'rm /root/marker && touch /root/broken'], NAME)).code).toBe(0);
    await restoreHost(HOST, 'converged', NAME);
    expect((await hostExec(HOST, ['cat', '/root/marker'], NAME)).stdout).toBe('converged\n');
    expect((await hostExec(HOST, ['test', '-e', '/root/broken'], NAME)).code).not.toBe(0);
  }, 5 * MIN);

  it('stops and starts a host', async () => {
    await stopHost(HOST, NAME);
    expect((await hostExec(HOST, ['true'], NAME, { timeoutMs: 30_000 })).code).not.toBe(0);
    expect((await labStatus(NAME)).hosts[0]).toMatchObject({ name: HOST, running: false, ssh: false });
    await startHost(HOST, NAME);
    expect((await hostExec(HOST, ['true'], NAME)).code).toBe(0);
    // The overlay survived the stop.
    expect((await hostExec(HOST, ['cat', '/root/marker'], NAME)).stdout).toBe('converged\n');
  }, 5 * MIN);

  it('leaves nothing behind after lab down', async () => {
    const recorded = readState(labPaths(NAME).stateFile) as LabState;
    expect(Object.keys(recorded.services).sort()).toEqual(['challtestsrv', 'pebble', 'tinyproxy']);
    const down = await labDown(NAME);
    expect(down.wasUp).toBe(true);
    expect(await leftovers(NAME, recorded)).toEqual([]);
    // A second down on a lab that is not up is fine.
    expect((await labDown(NAME)).wasUp).toBe(false);
  }, 3 * MIN);
});
