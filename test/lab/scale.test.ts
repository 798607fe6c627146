// @vitest-environment node
/**
 * The lab's cheap scale hosts (sshd alone in its own namespaces on the shared base image): real
 * logins with host-key checks, hosts that are separate from each other and from the base image,
 * bench/scale-hosts.yml converging and then changing nothing, `up` that keeps what runs and restarts
 * what died, and `down` that stops everything by pid and leaves nothing behind.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labPaths, labStatus, labUp, leftovers, type UpResult } from '../../src/lab/index.ts';
import { BASE_IMAGE } from '../../src/lab/layout.ts';
import { readState, type LabState } from '../../src/lab/state.ts';
import { changedTasks, provision } from '../e2e/lab-env.ts';

// This helper's own instance and subnet for scale hosts (see the brief); the benchmark uses it too.
const NAME = 'scale';
const SUBNET = '10.98.0.0/24';
const MIN = 60_000;
const supported = process.platform === 'linux' && process.getuid?.() === 0;

function ssh(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile('ssh', args, { timeout: 30_000 }, (err, stdout) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 255) : 0, stdout: String(stdout) }));
  });
}

const state = (): LabState => readState(join('/var/lib/provision-lab', NAME, 'state.json'))!;
const sh = async (host: string, cmd: string) => (await hostExec(host, ['sh', '-c', cmd], NAME, { timeoutMs: MIN })).stdout.trim();

describe.skipIf(!supported)('cheap scale hosts (lab instance "scale")', () => {
  let up: UpResult;
  let recorded: LabState;

  beforeAll(async () => {
    await labDown(NAME);
    up = await labUp({ name: NAME, subnet: SUBNET, scaleHosts: 3 });
  }, 5 * MIN);

  afterAll(async () => {
    recorded = state() ?? recorded;
    await labDown(NAME);
  }, 3 * MIN);

  it('comes up with only the scale hosts (no reference hosts, no Pebble) and an inventory of them', () => {
    expect(up.hosts).toEqual({});
    expect(up.pebble).toBe(false);
    expect(up.scale).toMatchObject({ hosts: 3, subnets: [SUBNET] });
    const inv = readFileSync(up.scale!.inventory, 'utf8');
    expect(inv).toContain('scale-003:\n    address: 10.98.0.23');
  });

  it('logs in over SSH with host-key verification, one key per host', async () => {
    const p = labPaths(NAME);
    const opts = (kh: string) => ['-i', p.sshKey, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${kh}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
    expect(await ssh([...opts(p.knownHosts), 'root@10.98.0.22', 'hostname'])).toEqual({ code: 0, stdout: 'scale-002\n' });
    // Another host's key for this address: refused.
    const other = readFileSync(p.knownHosts, 'utf8').split('\n').find((l) => l.startsWith('10.98.0.21 '))!.split(' ').slice(1).join(' ');
    const wrong = join(mkdtempSync(join(tmpdir(), 'scale-kh-')), 'known_hosts');
    writeFileSync(wrong, `10.98.0.22 ${other}\n`);
    expect((await ssh([...opts(wrong), 'root@10.98.0.22', 'true'])).code).not.toBe(0);
  }, 2 * MIN);

  it('keeps each host to itself: its writes are neither in another host nor in the base image, its mounts not in the machine', async () => {
    await sh('scale-001', 'echo mine > /etc/only-on-001');
    expect(await sh('scale-001', 'cat /etc/only-on-001')).toBe('mine');
    expect(await sh('scale-002', 'test -e /etc/only-on-001 && echo there || echo absent')).toBe('absent');
    expect(() => readFileSync(join(BASE_IMAGE, 'etc/only-on-001'))).toThrow();
    // sshd is the init of its own pid namespace: a host sees its own processes only.
    expect(await sh('scale-001', 'cat /proc/1/comm')).toBe('sshd');
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(`/provision-lab/${NAME}/scale/`);
  }, 2 * MIN);

  it('converges bench/scale-hosts.yml, and a second run changes nothing', async () => {
    const first = await provision(['--inventory', up.scale!.inventory, '--playbook', 'bench/scale-hosts.yml', '--json'], { timeoutMs: 5 * MIN });
    expect(first.code, first.stderr).toBe(2);
    expect(changedTasks(first).length).toBeGreaterThan(0);
    const second = await provision(['--inventory', up.scale!.inventory, '--playbook', 'bench/scale-hosts.yml', '--json'], { timeoutMs: 5 * MIN });
    expect(second.code, second.stderr).toBe(0);
    expect(changedTasks(second)).toEqual([]);
    // The handler reloaded sshd with the hardened drop-in (SIGHUP to pid 1): it still answers, with it.
    expect(await sh('scale-003', 'grep -c "^MaxAuthTries 3" /etc/ssh/sshd_config.d/10-provision.conf')).toBe('1');
  }, 10 * MIN);

  it('up again keeps the hosts that run, adds the new ones and restarts one that died', async () => {
    const before = state().scale!.hosts;
    const dead = before['scale-002']!.proc!;
    process.kill(dead.pid, 'SIGKILL'); // --kill-child takes its sshd (and every session) with it
    for (let i = 0; i < 50 && (await labStatus(NAME)).scale!.running === 3; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await labStatus(NAME)).scale).toMatchObject({ hosts: 3, running: 2 });

    const again = await labUp({ name: NAME, scaleHosts: 4 });
    expect(again.scale!.hosts).toBe(4);
    const after = state().scale!.hosts;
    expect(after['scale-001']!.proc!.pid).toBe(before['scale-001']!.proc!.pid);
    expect(after['scale-002']!.proc!.pid).not.toBe(dead.pid);
    expect(await labStatus(NAME)).toMatchObject({ scale: { hosts: 4, running: 4, answering: 4 } });
    // A restarted host starts from the base image again (its files lived in memory), with its own key.
    expect(await sh('scale-002', 'test -e /etc/ssh/sshd_config.d/10-provision.conf && echo kept || echo fresh')).toBe('fresh');
  }, 5 * MIN);

  it('down stops every host by pid and leaves nothing behind', async () => {
    const s = state();
    await labDown(NAME);
    // Processes (by pid and command line), links, namespaces and mounts of the instance.
    expect(await leftovers(NAME, s)).toEqual([]);
  }, 3 * MIN);
});
