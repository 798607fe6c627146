/**
 * Faults on real hosts (docs/reliability.md): a host that dies or whose link is cut mid-run, an
 * SSH connection dropped in the middle of dpkg, a dpkg lock held by someone else, a config that
 * fails validation, and a host whose key changed (ufw lockouts: test/integration/ufw-transaction.test.ts). Two fresh lab hosts of
 * an instance of their own; the real CLI in a child process. Assertions are on behaviour; the
 * figures (detection and rollback times) are printed as FIGURE lines for the document.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp, linkDown, linkUp, restoreHost, snapshotHost, startHost, stopHost } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { changedOn, failures, onConsole, pollUntil, recap, taskResult, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'flt';
const PREFIX = '10.84.0';
/** Every run must end by itself well within this; the child is killed after it (a hang fails the test). */
const RUN_BOUND_MS = 240_000;

let dir: string;
let inv: string;

const run = (playbookText: string, extra: string[] = []): Promise<CliResult> =>
  provision(['-i', inv, '-p', writePlaybook(dir, playbookText), '--json', ...extra], { timeoutMs: RUN_BOUND_MS });

const sh = (host: string, script: string, timeoutMs = 60_000) => onConsole(NAME, host, script, timeoutMs);
const sha = async (host: string, file: string) => (await sh(host, `sha256sum ${file} 2>/dev/null || echo absent`)).stdout.split(' ')[0]!.trim();
const figure = (name: string, value: string) => console.log(`FIGURE ${name}: ${value}`);

/** A play whose middle task runs long enough to break the host under it; guarded so a finished run skips it. */
const slowPlay = (tag: string) => `
- name: slow play ${tag}
  hosts: all
  tasks:
    - name: before
      copy: { dest: /root/${tag}-before, content: "before\\n" }
    - name: slow step
      command: { cmd: "sleep 8 && touch /root/${tag}-slow-done", creates: /root/${tag}-slow-done }
    - name: after
      copy: { dest: /root/${tag}-after, content: "after\\n" }
`;

/** Waits until the slow step's sleep runs on the host (seen from its console, not over SSH). */
const slowStepRunning = (host: string) => pollUntil(async () => (await sh(host, 'pgrep -x sleep')).code === 0, 60_000, 200);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-faults-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['web-01', 'web-02'], pebble: false });
  inv = writeInventory(dir, NAME, PREFIX);
  await snapshotHost('web-01', 'fresh', NAME);
  await snapshotHost('web-02', 'fresh', NAME);
});

afterAll(async () => {
  // Links and hosts a failed test may have left down come back before the instance goes.
  await linkUp('web-02', NAME).catch(() => {});
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('faults on real hosts', () => {
  it('a link cut mid-run: the other host converges, the cut one is unreachable with the reason (exit 3), a re-run converges it', async () => {
    const play = slowPlay('cut');
    const pending = run(play);
    try {
      expect(await slowStepRunning('web-02')).toBe(true);
      const cutAt = Date.now();
      await linkDown('web-02', NAME);
      const r = await pending;
      figure('link cut detected (run ended after the cut)', `${((Date.now() - cutAt) / 1000).toFixed(1)} s`);

      const down = r.events.find((e) => e.kind === 'host-unreachable' && e.host === 'web-02');
      expect(String(down?.reason)).toMatch(/connection lost: no answer to \d+ keepalives.*during task "slow step"/);
      const counts = recap(r);
      expect(counts['web-02']).toMatchObject({ unreachable: 1, failed: 0 });
      expect(counts['web-01']).toMatchObject({ unreachable: 0, failed: 0, changed: 3 });
      expect(failures(r)).toEqual([]);
      expect(r.code).toBe(3);
    } finally {
      await linkUp('web-02', NAME);
    }
    const again = await run(play);
    expect(again.code).toBe(2);
    expect(changedOn(again, 'web-01')).toEqual([]);
    // The host kept running the slow command to its end while the link was down: its guard skips it now.
    expect(changedOn(again, 'web-02').map((e) => e.task)).toEqual(['after']);
    expect((await run(play)).code).toBe(0);
  });

  it('a host stopped mid-run: reported unreachable with the reason (exit 3); after it restarts a re-run converges it and changes nothing elsewhere', async () => {
    const play = slowPlay('stop');
    const pending = run(play);
    try {
      expect(await slowStepRunning('web-02')).toBe(true);
      const stoppedAt = Date.now();
      await stopHost('web-02', NAME);
      const r = await pending;
      figure('host stopped (run ended after the stop began)', `${((Date.now() - stoppedAt) / 1000).toFixed(1)} s`);
      const down = r.events.find((e) => e.kind === 'host-unreachable' && e.host === 'web-02');
      expect(String(down?.reason)).toMatch(/web-02: connection (closed|lost).*during task "slow step"/);
      expect(recap(r)['web-02']).toMatchObject({ unreachable: 1, failed: 0 });
      expect(recap(r)['web-01']).toMatchObject({ unreachable: 0, failed: 0, changed: 3 });
      expect(r.code).toBe(3);
      // While it is down, a run reports it unreachable at connect time, and still converges the other.
      const whileDown = await run(play);
      expect(whileDown.events.find((e) => e.kind === 'host-unreachable')?.host).toBe('web-02');
      expect(changedOn(whileDown, 'web-01')).toEqual([]);
      expect(whileDown.code).toBe(3);
    } finally {
      await startHost('web-02', NAME);
    }
    const again = await run(play);
    expect(again.code).toBe(2);
    expect(changedOn(again, 'web-01')).toEqual([]);
    expect(changedOn(again, 'web-02').map((e) => e.task)).toEqual(['slow step', 'after']);
  });

  it('the SSH connection drops in the middle of dpkg: the re-run recovers dpkg and converges; dpkg --audit is clean', async () => {
    const play = `
- name: database client
  hosts: web-01
  tasks:
    - name: mariadb client
      apt: { packages: [mariadb-client] }
`;
    // A host left with a broken dpkg would fail every later test on it: start those from a clean host.
    let recovered = false;
    try {
      const pending = run(play);
      // On the host's console: once dpkg is mid-way (its updates journal is not empty), cut the run's
      // SSH session (the sshd process above apt-get) and kill dpkg and apt-get as the drop would.
      const cut = await sh(
        'web-01',
        `for i in $(seq 1 1800); do
           if pgrep -x dpkg >/dev/null && [ -n "$(ls -A /var/lib/dpkg/updates)" ]; then
             for a in $(pgrep -x apt-get); do
               s=$a; while [ "$s" -gt 1 ] && ! grep -q '^sshd' /proc/$s/comm; do s=$(awk '{print $4}' /proc/$s/stat); done
               [ "$s" -gt 1 ] && kill -KILL "$s"
             done
             pkill -KILL -x dpkg; pkill -KILL -x apt-get; echo cut; exit 0
           fi
           sleep 0.1
         done; exit 1`,
        RUN_BOUND_MS,
      );
      expect(cut.stdout).toContain('cut');
      const r = await pending;
      expect(String(r.events.find((e) => e.kind === 'host-unreachable')?.reason)).toMatch(/web-01: connection (closed|lost).*during task "mariadb client"/);
      expect(r.code).toBe(3);
      // The fault is real: dpkg was left interrupted.
      const broken = await sh('web-01', 'ls -A /var/lib/dpkg/updates; dpkg --audit');
      expect(broken.stdout.trim()).not.toBe('');

      const again = await run(play);
      const task = taskResult(again, 'web-01', 'mariadb client') as { status: string; msg?: string; changes: Array<{ target: string; action: string }> };
      expect(task.status, JSON.stringify(task)).toBe('changed');
      expect(task.changes.map((c) => c.target)).toEqual(['dpkg', 'mariadb-client']);
      expect(again.code).toBe(2);
      const audit = await sh('web-01', 'dpkg --audit; echo "exit=$?"; ls -A /var/lib/dpkg/updates; dpkg-query -W -f=\'${db:Status-Abbrev}\\n\' mariadb-client');
      expect(audit.stdout.trim().split('\n')).toEqual(['exit=0', 'ii']);
      expect((await run(play)).code).toBe(0);
      recovered = true;
    } finally {
      if (!recovered) await restoreHost('web-01', 'fresh', NAME);
    }
  });

  it('the dpkg lock held by another process: that host fails within lock_timeout with a message naming the lock; the other converges (exit 1)', async () => {
    const play = `
- name: a small package
  hosts: all
  tasks:
    - name: tree installed
      apt: { packages: [tree], lock_timeout: 5 }
    - name: marker
      copy: { dest: /root/lock-marker, content: "done\\n" }
`;
    // An fcntl lock, as apt and dpkg take theirs (flock would not conflict with them).
    const held = await sh(
      'web-01',
      `setsid python3 -c 'import fcntl,time; f=open("/var/lib/dpkg/lock-frontend","w"); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(600)' </dev/null >/dev/null 2>&1 &
       echo $! > /run/faults-lock.pid; sleep 1; kill -0 "$(cat /run/faults-lock.pid)" && echo holding`,
    );
    try {
      expect(held.stdout).toContain('holding');
      const r = await run(play);
      const failed = failures(r);
      expect(failed.map((e) => [e.host, e.task])).toEqual([['web-01', 'tree installed']]);
      expect(String(failed[0]!.msg)).toMatch(/^apt-get install tree \(waits up to 5s for the dpkg lock\) exited 100: .*Unable to acquire the dpkg frontend lock \(\/var\/lib\/dpkg\/lock-frontend\)/s);
      figure('dpkg lock held: task failed after (lock_timeout 5 s)', `${(Number(failed[0]!.ms) / 1000).toFixed(1)} s`);
      expect(taskResult(r, 'web-01', 'marker')).toBeUndefined();
      expect(recap(r)['web-02']).toMatchObject({ changed: 2, failed: 0 });
      expect(r.code).toBe(1);
    } finally {
      await sh('web-01', 'kill "$(cat /run/faults-lock.pid)"; rm -f /run/faults-lock.pid');
    }
    const again = await run(play);
    expect(changedOn(again, 'web-02')).toEqual([]);
    expect(changedOn(again, 'web-01').map((e) => e.task)).toEqual(['tree installed', 'marker']);
  });

  it('a config that fails validation: the live file is untouched, nginx keeps serving, the task fails with the validator output (exit 1)', async () => {
    // The validator really checks the candidate: a throwaway main config that includes only it.
    const validate = `sh -c 'echo "events {} http { include $1; }" > /tmp/nginx-candidate.conf && nginx -t -c /tmp/nginx-candidate.conf' validate %s`;
    const site = (body: string) => `
- name: web server
  hosts: all
  tasks:
    - name: nginx installed
      apt: { packages: [nginx-light] }
    - name: default site removed
      file: { path: /etc/nginx/sites-enabled/default, state: absent }
      notify: reload nginx
    - name: page
      copy: { dest: /var/www/html/index.html, content: "served by {{ inventory_hostname }}\\n" }
    - name: site
      copy:
        dest: /etc/nginx/conf.d/site.conf
        validate: ${JSON.stringify(validate)}
        content: |
          server {
            listen 80 default_server;
            root /var/www/html;
          ${body}
          }
      notify: reload nginx
    - name: nginx running
      service: { name: nginx, state: started, enabled: true }
  handlers:
    - name: reload nginx
      service: { name: nginx, state: reloaded }
`;
    const good = site('  location / { index index.html; }');
    expect((await run(good)).code).toBe(2);
    const get = 'python3 -c "import urllib.request as u; r=u.urlopen(\'http://' + PREFIX + '.11/\'); print(r.status, r.read().decode().strip())"';
    const served = await hostExec('web-02', ['sh', '-c', get], NAME);
    expect(served.stdout.trim(), served.stderr).toBe('200 served by web-01');

    const before = await sha('web-01', '/etc/nginx/conf.d/site.conf');
    const broken = await run(site('  bogus_directive on;'), ['--limit', 'web-01']);
    const failed = failures(broken);
    expect(failed.map((e) => e.task)).toEqual(['site']);
    expect(String(failed[0]!.msg)).toContain('validation failed, the live file is untouched');
    expect(String(failed[0]!.msg)).toContain('unknown directive "bogus_directive"');
    expect(broken.code).toBe(1);
    expect(await sha('web-01', '/etc/nginx/conf.d/site.conf')).toBe(before);
    // No candidate left behind beside the live file, and the service still answers.
    expect((await sh('web-01', 'ls -A /etc/nginx/conf.d')).stdout.trim()).toBe('site.conf');
    expect((await hostExec('web-02', ['sh', '-c', get], NAME)).stdout.trim()).toBe('200 served by web-01');
    // The failed task had recorded its notification on the host before running (a run that dies
    // mid-task still owes its handler): the next run reloads nginx once and changes nothing else.
    const fixed = await run(good);
    expect(changedOn(fixed, 'web-01').map((e) => e.task)).toEqual(['reload nginx']);
    expect(changedOn(fixed, 'web-02')).toEqual([]);
    expect((await run(good)).code).toBe(0);
  });

  it('a host whose key was regenerated on the host itself is refused as HOST KEY CHANGED', async () => {
    await snapshotHost('web-02', 'before-key-swap', NAME);
    try {
      const swap = await sh('web-02', 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh && echo swapped');
      expect(swap.stdout).toContain('swapped');
      const r = await run(slowPlay('keys').replace('sleep 8', 'true'));
      const refused = r.events.find((e) => e.kind === 'host-unreachable' && e.host === 'web-02');
      expect(String(refused?.reason)).toMatch(/web-02: HOST KEY CHANGED for 10\.84\.0\.12: it now offers \S+ SHA256:\S+, which is not the key recorded in .*refusing to connect/);
      expect(recap(r)['web-01']).toMatchObject({ unreachable: 0, failed: 0 });
      expect(r.code).toBe(3);
      expect(taskResult(r, 'web-02', 'before')).toBeUndefined();
    } finally {
      await restoreHost('web-02', 'before-key-swap', NAME);
    }
    expect((await provision(['ping', '-i', inv])).code).toBe(0);
  });
});

