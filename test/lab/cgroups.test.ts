// @vitest-environment node
// Each lab host has a cgroup tree of its own: the same unit on two hosts is two cgroups, never one.
// Before, every container of every instance was started from the machine's one cgroup, and nspawn put
// them all under /payload: both web servers' nginx.service was /payload/system.slice/nginx.service, and
// a restart on one host failed at random in systemd's cgroup kill and attach (EIO, status=219/CGROUP).
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp, leftovers } from '../../src/lab/index.ts';
import { childPids, readState, type LabState } from '../../src/lab/state.ts';

const NAME = 'cgx';
const SUBNET = '10.116.0.0/24';
const HOSTS = ['web-01', 'web-02'] as const;
const MIN = 60_000;
const supported = process.platform === 'linux' && process.getuid?.() === 0;

/** A process's cgroup in the named systemd hierarchy and in the unified one, as the machine sees it. */
function cgroupsOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .filter((l) => /^\d+:name=systemd:/.test(l) || l.startsWith('0::'))
    .map((l) => l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1))
    .sort();
}

/** All descendants of a process (the container's processes, seen from the machine). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of childPids(p)) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

/** The probe unit: one `sleep` whose whole cgroup systemd kills on every restart. */
const PROBE_UNIT = `[Unit]
Description=provision lab test: one process, killed with its cgroup on restart
StartLimitIntervalSec=0
[Service]
ExecStart=/bin/sleep infinity
KillMode=control-group
`;

describe.skipIf(!supported)('lab hosts: a cgroup tree each', () => {
  let state: LabState;

  beforeAll(async () => {
    await labDown(NAME);
    await labUp({ name: NAME, subnet: SUBNET, only: [...HOSTS], pebble: false });
    state = readState(`/var/lib/provision-lab/${NAME}/state.json`)!;
  }, 10 * MIN);

  afterAll(async () => {
    await labDown(NAME);
  }, 3 * MIN);

  it('puts each host under a cgroup named for it, in every hierarchy nspawn uses', () => {
    for (const h of HOSTS) {
      const machine = state.hosts[h]!.machine;
      const init = childPids(state.hosts[h]!.nspawn!.pid)[0]!;
      const paths = cgroupsOf(init);
      expect(paths.length, `${h}: ${paths.join(' ')}`).toBeGreaterThan(0);
      for (const p of paths) expect(p, h).toMatch(new RegExp(`^/provision-lab/${machine}/`));
    }
  });

  it('the same unit on two hosts is two cgroups (sshd on each host, seen from the machine)', () => {
    const sshdCgroups = HOSTS.map((h) => {
      const init = childPids(state.hosts[h]!.nspawn!.pid)[0]!;
      // The listening sshd: init's child named sshd.
      const sshd = childPids(init).find((p) => comm(p) === 'sshd');
      expect(sshd, `${h}: no sshd under its init (${descendants(init).map(comm).join(', ')})`).toBeDefined();
      return cgroupsOf(sshd!);
    });
    expect(sshdCgroups[0]!.some((p) => p.endsWith('/system.slice/ssh.service'))).toBe(true);
    for (const p of sshdCgroups[0]!) expect(sshdCgroups[1]).not.toContain(p);
  });

  it('restarts of one unit on both hosts at once all succeed, each host keeping its own process (8 rounds)', async () => {
    for (const h of HOSTS) {
      const r = await hostExec(h, ['sh', '-c', `cat > /etc/systemd/system/cgx-probe.service <<'EOF'\n${PROBE_UNIT}EOF\nsystemctl daemon-reload && systemctl start cgx-probe`], NAME, { timeoutMs: 60_000 });
      expect(r.code, `${h}: ${r.stdout}${r.stderr}`).toBe(0);
    }
    for (let round = 0; round < 8; round++) {
      const results = await Promise.all(HOSTS.map((h) => hostExec(h, ['sh', '-c', 'systemctl restart cgx-probe && systemctl is-active cgx-probe'], NAME, { timeoutMs: 60_000 })));
      results.forEach((r, i) => expect(r.code, `round ${round}, ${HOSTS[i]}: ${r.stdout}${r.stderr}`).toBe(0));
    }
    for (const h of HOSTS) {
      // Inside the host: its probe's cgroup holds exactly its one sleep.
      const r = await hostExec(h, ['sh', '-c', 'systemctl show -p ControlGroup --value cgx-probe; systemctl show -p MainPID --value cgx-probe; journalctl -u cgx-probe --no-pager -q | grep -c -i -e "input/output error" -e "219/CGROUP" || true'], NAME);
      const [cg, mainPid, errors] = r.stdout.trim().split('\n');
      expect(cg).toBe('/system.slice/cgx-probe.service');
      expect(Number(mainPid)).toBeGreaterThan(0);
      expect(errors, `${h}: cgroup errors in the probe's journal`).toBe('0');
    }
  });

  it('lab down removes the hosts\' cgroups', async () => {
    const recorded = readState(`/var/lib/provision-lab/${NAME}/state.json`)!;
    await labDown(NAME);
    expect(await leftovers(NAME, recorded)).toEqual([]);
    for (const h of HOSTS) {
      const machine = recorded.hosts[h]!.machine;
      for (const root of ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
        let names: string[] = [];
        try {
          names = readdirSync(`${root}/provision-lab`);
        } catch {
          // no such hierarchy here
        }
        expect(names, root).not.toContain(machine);
      }
    }
  }, 3 * MIN);
});
