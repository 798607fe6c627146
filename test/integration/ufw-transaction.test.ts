/**
 * ufw on a real lab host, where ufw really enforces (the lab gives hosts CAP_NET_ADMIN), checked
 * from the host's console (nsenter: a firewall that shuts SSH cannot hide the state) and by fresh
 * SSH logins from the control machine (docs/reliability.md, "ufw lockout"):
 *
 * - a ufw apply and its commit-confirm rollback are one transaction: a window shorter than the
 *   apply ends applied or rolled back, never with ufw on without the SSH rule (several timings);
 * - a rule set that would shut out the address this very run connects from is refused before
 *   anything is applied, whatever admin_cidrs say; when the inventory allows it explicitly, the
 *   commit-confirm net rolls it back at once;
 * - a confirmed change stays, with no rollback left armed.
 *
 * One lab host (instance `ufw`, 10.95.0.0/24) with ufw installed and off, restored from a
 * snapshot before each case. Figures are printed as FIGURE lines; nothing asserts on time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labPaths, labUp, restoreHost, snapshotHost } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { failures, onConsole, taskResult, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'ufw';
const PREFIX = '10.95.0';
/** The control machine's address on the lab bridge: where provision's SSH connections come from. */
const CONTROLLER = `${PREFIX}.1`;
/** An address that is not the control machine: the "wrong" admin. */
const ELSEWHERE = `${PREFIX}.200`;
const HOST = 'web-01';
/** Every run must end by itself well within this; the child is killed after it (a hang fails the test). */
const RUN_BOUND_MS = 300_000;

let dir: string;
let inv: string;

const run = (inventory: string, playbookText: string): Promise<CliResult> =>
  provision(['-i', inventory, '-p', writePlaybook(dir, playbookText), '--limit', HOST, '--json'], { timeoutMs: RUN_BOUND_MS });
const ufwPlay = (params: string) => `
- name: firewall
  hosts: ${HOST}
  tasks:
    - name: firewall
      ufw: ${params}
`;
const rolePlay = `
- name: firewall role
  hosts: ${HOST}
  roles: [firewall]
`;
const sh = (script: string) => onConsole(NAME, HOST, script);
const figure = (name: string, value: string) => console.log(`FIGURE ${name}: ${value}`);

/** ufw's four files, hashed: "unchanged" means byte for byte. */
const ufwFiles = async () => (await sh('cat /etc/ufw/ufw.conf /etc/ufw/user.rules /etc/ufw/user6.rules /etc/default/ufw | sha256sum')).stdout.trim();

interface Seen {
  active: boolean;
  /** The kernel's rules (not ufw's files) accept new SSH from the control machine. */
  sshRuleLoaded: boolean;
  record: string;
  rollbackUnits: string;
}

/** The firewall as the host's kernel and ufw see it, from the console. */
async function seen(): Promise<Seen> {
  const out = (
    await sh(
      [
        'ufw status | head -1',
        // ufw's chain for user rules; an ACCEPT for port 22 from the control machine (or from anywhere).
        `echo "ssh-accepts=$(iptables -S ufw-user-input 2>/dev/null | grep -E -- '--dport 22 ' | grep -E -- '(-s ${CONTROLLER}/32 |^-A ufw-user-input -p tcp)' | grep -c -- '-j ACCEPT')"`,
        'echo "record=$(cat /var/lib/provision/ufw-txn/record 2>/dev/null)"',
        'echo "units=$(systemctl is-active provision-ufw-rollback.timer provision-ufw-rollback.service 2>/dev/null | tr "\\n" " ")"',
      ].join('; '),
    )
  ).stdout;
  const field = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(out)?.[1]?.trim() ?? '';
  return { active: /Status: active/.test(out), sshRuleLoaded: Number(field('ssh-accepts')) > 0, record: field('record'), rollbackUnits: field('units') };
}

/** A fresh SSH login from the control machine (what the operator would try). */
const freshLogin = async () => (await hostExec(HOST, ['true'], NAME, { timeoutMs: 15_000 })).code === 0;

/**
 * The host as the snapshot left it: ufw installed, off, its files as Debian ships them. The kernel's
 * rules live in the host's network namespace, which outlives its files (a restore and a reboot
 * keep them, and a ufw that is off at boot does not touch them): cleared first, from the console.
 */
async function baseline(): Promise<void> {
  const flush = 'for t in iptables ip6tables; do $t -P INPUT ACCEPT; $t -P FORWARD ACCEPT; $t -P OUTPUT ACCEPT; $t -F; $t -X; done; echo flushed';
  expect((await sh(flush)).stdout).toContain('flushed');
  await restoreHost(HOST, 'ufw-off', NAME);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-ufw-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: [HOST], pebble: false });
  inv = writeInventory(dir, NAME, PREFIX);
  const installed = await run(inv, `
- name: ufw installed, off
  hosts: ${HOST}
  tasks:
    - name: ufw installed
      apt: { packages: [ufw] }
`);
  expect(installed.code, installed.stdout + installed.stderr).toBe(2);
  await snapshotHost(HOST, 'ufw-off', NAME);
}, 600_000);

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('ufw: the run itself is never shut out', () => {
  it('rules that leave out admin_source: refused before anything is applied', async () => {
    await baseline();
    const before = await ufwFiles();
    const r = await run(inv, ufwPlay(`{ state: enabled, default_incoming: deny, admin_source: ${CONTROLLER}, rules: [{ rule: allow, port: 22, proto: tcp, from: ${ELSEWHERE} }] }`));
    const failed = failures(r);
    expect(failed.map((e) => e.task)).toEqual(['firewall']);
    expect(String(failed[0]!.msg)).toContain(`refusing to enable ufw: the resulting rules do not allow SSH (22/tcp) from admin_source ${CONTROLLER}`);
    expect(r.code).toBe(1);
    expect(await seen()).toMatchObject({ active: false });
    expect(await ufwFiles()).toBe(before);
    expect(await freshLogin()).toBe(true);
  });

  it("admin_cidrs that leave out the run's own address: refused before anything is applied (exit 1, the address and the rules named), no lockout", async () => {
    await baseline();
    const before = await ufwFiles();
    const wrongAdmin = writeInventory(dir, NAME, PREFIX, { tail: `vars:\n  admin_cidrs: [${ELSEWHERE}/32]\n  monitoring_cidrs: [${PREFIX}.20/32]\n` });
    const started = Date.now();
    const r = await run(wrongAdmin, rolePlay);
    figure('refused run took (role firewall, wrong admin_cidrs)', `${((Date.now() - started) / 1000).toFixed(1)} s`);
    const failed = failures(r);
    expect(failed.map((e) => e.task)).toEqual(['firewall rules and policy']);
    const msg = String(failed[0]!.msg);
    expect(msg).toContain(`refusing to enable ufw: this run connects from ${CONTROLLER} (SSH_CONNECTION on the host) to ${PREFIX}.11 port 22/tcp`);
    expect(msg).toContain(`rules for 22/tcp: allow 22/tcp from ${ELSEWHERE}`);
    expect(msg).toContain('Nothing was applied');
    expect(msg).toContain('firewall_allow_locking_out_this_run: true');
    expect(r.code).toBe(1);
    expect(await ufwFiles()).toBe(before);
    expect(await seen()).toMatchObject({ active: false });
    expect(await freshLogin()).toBe(true);
  });

  it('as a sudo user (become): the address is read above sudo, which does not pass SSH_CONNECTION on, and the rule set is refused the same way', async () => {
    await baseline();
    const made = await sh(
      'useradd -m -s /bin/bash deploy && install -d -o deploy -g deploy -m 700 /home/deploy/.ssh && install -o deploy -g deploy -m 600 /root/.ssh/authorized_keys /home/deploy/.ssh/ && ' +
        'echo "deploy ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy && echo made',
    );
    expect(made.stdout).toContain('made');
    const before = await ufwFiles();
    const p = labPaths(NAME);
    const asDeploy = path.join(dir, 'inv-deploy.yml');
    writeFileSync(
      asDeploy,
      `defaults:\n  user: deploy\n  become: true\n  identity_file: ${p.sshKey}\n  known_hosts: ${p.knownHosts}\n  connect_timeout: 5\nhosts:\n  ${HOST}: { address: ${PREFIX}.11, groups: [web] }\n`,
    );
    const r = await run(asDeploy, ufwPlay(`{ state: enabled, default_incoming: deny, rules: [{ rule: allow, port: 22, proto: tcp, from: ${ELSEWHERE} }] }`));
    const failed = failures(r);
    expect(failed.map((e) => e.task)).toEqual(['firewall']);
    expect(String(failed[0]!.msg)).toContain(`refusing to enable ufw: this run connects from ${CONTROLLER} (SSH_CONNECTION on the host)`);
    expect(r.code).toBe(1);
    expect(await ufwFiles()).toBe(before);
    expect(await freshLogin()).toBe(true);
  });

  it('firewall_allow_locking_out_this_run: true: applied, the new login fails, and commit-confirm rolls back at once over the run\'s own connection', async () => {
    await baseline();
    const before = await ufwFiles();
    const meant = writeInventory(dir, NAME, PREFIX, {
      tail: `vars:\n  admin_cidrs: [${ELSEWHERE}/32]\n  monitoring_cidrs: [${PREFIX}.20/32]\n  firewall_allow_locking_out_this_run: true\n  firewall_commit_confirm_seconds: 60\n`,
    });
    const r = await run(meant, rolePlay);
    const endedAt = Date.now();
    const failed = failures(r);
    expect(failed.map((e) => e.task)).toEqual(['firewall rules and policy']);
    expect(String(failed[0]!.msg)).toMatch(
      /^a new SSH connection failed after the ufw change \(.*connection timed out after 5s\); rolled back at once over the run's existing connection: the previous ufw files and state are in place$/,
    );
    expect(r.code).toBe(1);
    // Back at once, not at the end of the 60 s window.
    expect(await freshLogin()).toBe(true);
    figure('SSH back after the run ended (window 60 s, rolled back over the run\'s connection)', `${((Date.now() - endedAt) / 1000).toFixed(1)} s`);
    figure('failed task took (fresh login timeout 5 s)', `${(Number(failed[0]!.ms) / 1000).toFixed(1)} s`);
    expect(await ufwFiles()).toBe(before);
    const s = await seen();
    expect(s).toMatchObject({ active: false });
    expect(s.record).toMatch(/^[0-9a-f]{12} rolled-back$/);
    expect(s.rollbackUnits).not.toMatch(/\bactive\b|activating/);
  });

  it('a confirmed change stays: no rollback left armed, still on past the window, and a second run changes nothing', async () => {
    await baseline();
    const window = 20;
    const params = `{ state: enabled, default_incoming: deny, admin_source: ${CONTROLLER}, commit_confirm_seconds: ${window}, rules: [{ rule: allow, port: 22, proto: tcp, from: ${CONTROLLER} }] }`;
    const startedAt = Date.now();
    const r = await run(inv, ufwPlay(params));
    expect(failures(r)).toEqual([]);
    expect(String(taskResult(r, HOST, 'firewall')?.note)).toContain('commit-confirm');
    expect(r.code).toBe(2);
    const right = await seen();
    expect(right).toMatchObject({ active: true, sshRuleLoaded: true });
    expect(right.record).toMatch(/ confirmed$/);
    expect(right.rollbackUnits).not.toMatch(/\bactive\b|activating/);
    // Past the window (counted from before the apply): nothing was rolled back.
    await new Promise((res) => setTimeout(res, Math.max(0, startedAt + (window + 5) * 1000 - Date.now())));
    expect(await seen()).toEqual(right);
    expect(await freshLogin()).toBe(true);
    expect((await run(inv, ufwPlay(params))).code).toBe(0);
  });
});

describe('ufw: apply and rollback are one transaction', () => {
  /**
   * Rule counts and windows: the window runs out early in the apply; then about where the apply
   * ends (as many commands as the first round got through in its window: the rollback's timer, the
   * last commands and the confirmation race); and never.
   */
  const FIRST = { rules: 150, window: 10 };
  const LAST = { rules: 15, window: 60 };

  it('a commit-confirm window shorter than the apply ends applied or rolled back, never with ufw on without the SSH rule (3 timings)', async () => {
    const outcomes: string[] = [];
    let doneInWindow = 0;
    for (const round of [0, 1, 2]) {
      const t = round === 0 ? FIRST : round === 1 ? { rules: Math.max(1, doneInWindow - 2), window: FIRST.window } : LAST;
      await baseline();
      const before = await ufwFiles();
      // SSH from the control machine first, then many more rules: the apply takes a while (each ufw command is a Python start).
      const extra = Array.from({ length: t.rules }, (_, i) => `{ rule: allow, port: ${20000 + i}, proto: tcp, from: ${PREFIX}.${100 + (i % 100)} }`);
      const params = `{ state: enabled, default_incoming: deny, admin_source: ${CONTROLLER}, commit_confirm_seconds: ${t.window}, rules: [{ rule: allow, port: 22, proto: tcp, from: ${CONTROLLER} }, ${extra.join(', ')}] }`;
      const startedAt = Date.now();
      const r = await run(inv, ufwPlay(params));
      const took = (Date.now() - startedAt) / 1000;
      const s = await seen();
      const login = await freshLogin();
      const msg = String(failures(r)[0]?.msg ?? '');
      const label = `${t.rules + 2} ufw commands, window ${t.window}s`;
      // The one state that must never be: ufw on, and no rule letting the control machine in.
      expect(s.active && !s.sshRuleLoaded, `${label}: ufw active without the SSH rule (locked out); run said: ${msg || r.code}`).toBe(false);
      expect(login, `${label}: a fresh SSH login after the run failed; run said: ${msg || r.code}`).toBe(true);
      let outcome: string;
      if (r.code === 2) {
        outcome = 'applied';
        expect(s).toMatchObject({ active: true, sshRuleLoaded: true });
        expect(s.record).toMatch(/ confirmed$/);
      } else {
        expect(r.code, `${label}: ${r.stdout.slice(-2000)}`).toBe(1);
        const ranOut = /ran out after (\d+) of \d+ ufw commands/.exec(msg);
        if (round === 0 && ranOut) doneInWindow = Number(ranOut[1]);
        outcome = ranOut ? 'rolled back mid-apply' : 'rolled back before the confirmation';
        expect(msg).toMatch(
          /^apply \d+ ufw commands as one transaction \(commit-confirm \d+s\) exited 2: rolled back: the commit-confirm window \(\d+s\) ran out after \d+ of \d+ ufw commands, so the rest was not applied; the previous ufw files and state are restored$|^the ufw change was rolled back before it could be confirmed/,
        );
        expect(s).toMatchObject({ active: false });
        expect(s.record).toMatch(/ rolled-back$/);
        expect(await ufwFiles()).toBe(before);
      }
      // Nothing armed is left to change it later: past the window the host is as the run left it.
      await new Promise((res) => setTimeout(res, Math.max(0, startedAt + (t.window + 5) * 1000 - Date.now())));
      expect(await seen(), `${label}: changed after the run`).toEqual(s);
      outcomes.push(outcome);
      figure(`${label}`, `${outcome}, run ${took.toFixed(1)} s${msg ? ` (${msg.replace(/^.*?(ran out after \d+ of \d+).*$/, '$1')})` : ''}`);
    }
    // The timings must have exercised both ends, else this test proved less than it says.
    expect(outcomes).toContain('rolled back mid-apply');
    expect(outcomes).toContain('applied');
  });
});
