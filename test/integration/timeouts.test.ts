/**
 * Bounded commands on real hosts (docs/reliability.md, "Timeouts"): a probe that hangs fails its
 * host within probe_timeout, naming the probe, while the other host finishes; an apt install stuck
 * in dpkg (a dpkg hook that sleeps, as a hung maintainer script would) fails within
 * command_timeout, and the host is left with no process of it and the dpkg lock free (apt-get runs
 * dpkg in a session of its own, out of reach of a process-group kill); a command past its task's
 * own `timeout`. web-01 is reached as a non-root user through sudo, web-02 as root. Every run is
 * bounded by the test: on code without bounds it hangs and is killed, which fails the test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { failures, onConsole, recap, taskResult, writePlaybook } from './faults-helpers.ts';

const NAME = 'bec';
const PREFIX = '10.91.0';
/** Far below the 600 s the hung commands would take: a run that gets here is a hang. */
const RUN_BOUND_MS = 150_000;

let dir: string;

const sh = (host: string, script: string, timeoutMs = 60_000) => onConsole(NAME, host, script, timeoutMs);
const figure = (name: string, value: string) => console.log(`FIGURE ${name}: ${value}`);

function inventory(web01: string, web02: string): string {
  const p = labPaths(NAME);
  const file = path.join(dir, `inv-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(
    file,
    `defaults:
  identity_file: ${p.sshKey}
  known_hosts: ${p.knownHosts}
  connect_timeout: 5
hosts:
  web-01: { address: ${PREFIX}.11, user: bob, become: true, ${web01} }
  web-02: { address: ${PREFIX}.12, user: root, ${web02} }
`,
  );
  return file;
}

async function run(inv: string, playbookText: string): Promise<CliResult & { seconds: number }> {
  const r = await provision(['-i', inv, '-p', writePlaybook(dir, playbookText), '--json'], { timeoutMs: RUN_BOUND_MS });
  // The run's own wall time (from its recap): without the CLI's start-up.
  const wallMs = Number(r.events.find((e) => e.kind === 'recap')?.wallMs ?? NaN);
  return { ...r, seconds: wallMs / 1000 };
}

/** What of a bounded command could still be running on a host: its tagged processes, sleeps, apt and dpkg. */
async function leftovers(host: string): Promise<string> {
  const r = await sh(
    host,
    `grep -slz '^PROVISION_CMD_ID=' /proc/[0-9]*/environ 2>/dev/null | while read -r f; do p=\${f#/proc/}; p=\${p%/environ}; echo "tagged $p: $(tr '\\0' ' ' < /proc/$p/cmdline)"; done
ps -eo stat=,args= | grep -E '^[^Z]\\S* +(sleep|apt-get|dpkg|/usr/bin/dpkg)( |$)' || true`,
  );
  return r.stdout.trim();
}

/** Whether dpkg's locks can be taken (what the next apt would need). */
const dpkgLocksFree = async (host: string) =>
  (
    await sh(
      host,
      `python3 -c 'import fcntl
for p in ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"):
    fcntl.lockf(open(p, "w"), fcntl.LOCK_EX | fcntl.LOCK_NB)
print("free")'`,
    )
  ).stdout.trim() === 'free';

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-timeouts-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['web-01', 'web-02'], pebble: false });
  const r = await sh(
    'web-01',
    `set -e
id bob >/dev/null 2>&1 || useradd -m -s /bin/bash bob
install -d -m 700 -o bob -g bob /home/bob/.ssh
install -m 600 -o bob -g bob /root/.ssh/authorized_keys /home/bob/.ssh/authorized_keys
echo 'bob ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/bob; chmod 440 /etc/sudoers.d/bob; visudo -cq`,
  );
  expect(r, r.stderr).toMatchObject({ code: 0 });
});

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('commands are bounded on the host', () => {
  it('a probe that hangs fails its host within probe_timeout, naming the probe; the other host finishes; nothing of it is left running', async () => {
    const inv = inventory('probe_timeout: 5, vars: { guard: "sleep 600" }', 'probe_timeout: 5, vars: { guard: "true" }');
    const r = await run(
      inv,
      `
- name: first play
  hosts: all
  tasks:
    - name: before
      copy: { dest: /root/probe-before, content: "before\\n" }
- name: second play
  hosts: all
  tasks:
    - name: guarded
      command: { cmd: "touch /root/probe-guarded", unless: "{{ guard | safe }}" }
    - name: after
      copy: { dest: /root/probe-after, content: "after\\n" }
`,
    );
    figure('run with a probe hung on one host (probe_timeout 5 s)', `${r.seconds.toFixed(1)} s`);
    // Only the task that needs the hung probe fails: the first play's task ran on web-01.
    expect(failures(r).map((e) => `${e.host}: ${e.task}`)).toEqual(['web-01: guarded']);
    expect(taskResult(r, 'web-01', 'guarded')?.msg).toBe(
      `reading the host's state: probe "cmd:sleep 600" did not finish within 5s (probe_timeout); the host stopped it and every process it started`,
    );
    expect(recap(r)['web-01']).toMatchObject({ changed: 1, failed: 1, unreachable: 0 });
    expect(recap(r)['web-02']).toMatchObject({ changed: 2, ok: 1, failed: 0, unreachable: 0 });
    expect(r.code).toBe(1);
    expect(await leftovers('web-01')).toBe('');
  });

  it('an apt install stuck in dpkg fails within command_timeout; dpkg is stopped too and its lock is free; a command past its own timeout fails', async () => {
    // A dpkg hook that never ends: dpkg holds its lock and runs it, as a hung maintainer script would.
    await sh('web-01', `echo 'pre-invoke=sleep 600' > /etc/dpkg/dpkg.cfg.d/zz-provision-test-hang`);
    const inv = inventory('command_timeout: 30, vars: { apt_host: true, slow_host: false }', 'command_timeout: 30, vars: { apt_host: false, slow_host: true }');
    try {
      const r = await run(
        inv,
        `
- name: stuck
  hosts: all
  tasks:
    - name: install tree
      apt: { packages: [tree], update_cache: false }
      when: apt_host
    - name: slow command
      command: { cmd: "sleep 600 && touch /root/slept", creates: /root/slept, timeout: 3 }
      when: slow_host
`,
      );
      figure('run with apt stuck in dpkg (command_timeout 30 s) and a command past its 3 s timeout', `${r.seconds.toFixed(1)} s`);
      expect(String(taskResult(r, 'web-01', 'install tree')?.msg)).toMatch(
        /^apt-get install tree \(waits up to \d+s for the dpkg lock\) did not finish within 30s \(command_timeout\); the host stopped it and every process it started$/,
      );
      expect(taskResult(r, 'web-02', 'slow command')?.msg).toBe(
        "command `sleep 600 && touch /root/slept` did not finish within 3s (the task's timeout); the host stopped it and every process it started",
      );
      expect(recap(r)['web-01']).toMatchObject({ failed: 1, unreachable: 0 });
      expect(recap(r)['web-02']).toMatchObject({ failed: 1, unreachable: 0 });
      expect(r.code).toBe(1);
      expect(await leftovers('web-01')).toBe('');
      expect(await leftovers('web-02')).toBe('');
      expect(await dpkgLocksFree('web-01')).toBe(true);
    } finally {
      await sh('web-01', 'rm -f /etc/dpkg/dpkg.cfg.d/zz-provision-test-hang');
    }
    // Nothing holds the lock: the next run installs (recovering the dpkg that was cut), then nothing is left to do.
    const play = `
- name: install
  hosts: web-01
  tasks:
    - name: install tree
      apt: { packages: [tree], update_cache: false }
`;
    const again = await run(inv, play);
    expect(failures(again)).toEqual([]);
    expect(again.code).toBe(2);
    expect((await sh('web-01', "dpkg-query -W -f='${db:Status-Abbrev}' tree")).stdout.trim()).toBe('ii');
    expect((await run(inv, play)).code).toBe(0);
  });
});
