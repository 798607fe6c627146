/**
 * The become password on real hosts (docs/security.md, "Become"): a non-root login user whose
 * sudo (a) asks for the password on every command, (b) is NOPASSWD (what the common role
 * installs), (c) asks, but has a real cached timestamp (`Defaults:carol timestamp_type=global`:
 * one timestamp for all of the user's sessions, made before the run by `sudo -v` in another SSH
 * session, and removed by a task in the middle of the run so sudo asks again). The NOPASSWD host
 * is reached through the first one as its `jump` host. A small playbook (files, a template, a
 * command reading stdin, a batch of probes) must leave files with exactly their content, and the
 * password must be in no output (plain, --json, --diff), no file on the hosts, no process's argv
 * (sampled during the run) and not in the journal. A wrong password is tried once and reported.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { sshArgs } from '../../src/lab/hosts.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { failures, onConsole, recap, writePlaybook } from './faults-helpers.ts';

const NAME = 'bec';
const PREFIX = '10.91.0';
/** Every run must end by itself well within this (a hang fails the test). */
const RUN_BOUND_MS = 180_000;
/** Unique per test run, so nothing left from an earlier run can count; `;` and `&` as in the issue. */
const PASSWORD = `Tr0ub4dor&3;hunter2-${randomBytes(4).toString('hex')}`;
const WRONG = `wrong-${randomBytes(4).toString('hex')}`;
const PASSWORD_ENV = 'PROVISION_TEST_BECOME_PASSWORD';

/** inventory host → lab host, login user. */
const TARGETS = { pw: ['web-01', 'alice'], nopw: ['web-02', 'bob'], cached: ['lb-01', 'carol'] } as const;
type Target = keyof typeof TARGETS;
const targets = Object.keys(TARGETS) as Target[];

let dir: string;
let inv: string;
let template: string;

const sh = (host: string, script: string, timeoutMs = 60_000) => onConsole(NAME, host, script, timeoutMs);
const run = (playbookText: string, extra: string[] = [], password = PASSWORD): Promise<CliResult> =>
  provision(['-i', inv, '-p', writePlaybook(dir, playbookText), ...extra], { timeoutMs: RUN_BOUND_MS, env: { [PASSWORD_ENV]: password } });
const output = (r: CliResult) => r.stdout + r.stderr;

/** Expected content of each managed file, by name under /srv/bec. */
const files = (host: Target): Record<string, string> => ({
  ...Object.fromEntries([1, 2, 3, 4, 5, 6].map((i) => [`file-${i}`, `content of file ${i}\nsecond line\n`])),
  templated: `rendered for ${host}\n`,
  'from-stdin': 'sent on stdin\n',
  whoami: 'root\n',
  ...(host === 'cached' ? { forgot: '', 'after-forget': 'after the timestamp went\n' } : {}),
});

const playbook = () => `
- name: become through sudo
  hosts: all
  tasks:
    - name: directory
      file: { path: /srv/bec, state: directory }
${[1, 2, 3, 4, 5, 6].map((i) => `    - name: file ${i}\n      copy: { dest: /srv/bec/file-${i}, content: "content of file ${i}\\nsecond line\\n" }`).join('\n')}
    - name: a template
      template: { dest: /srv/bec/templated, src: ${template} }
    - name: a command reading stdin
      command: { cmd: "cat > /srv/bec/from-stdin", stdin: "sent on stdin\\n", creates: /srv/bec/from-stdin }
    - name: guarded by probes
      command: { cmd: "id -un > /srv/bec/whoami", unless: "grep -qx root /srv/bec/whoami", onlyif: "test -d /srv/bec" }
- name: sudo's timestamp goes away in the middle of the run
  hosts: cached
  tasks:
    - name: forget the timestamp
      command: { cmd: "rm -rf /run/sudo/ts/carol && touch /srv/bec/forgot", creates: /srv/bec/forgot }
    - name: after it
      copy: { dest: /srv/bec/after-forget, content: "after the timestamp went\\n" }
`;

/** A script that decodes the password into a file under /run (never in a command line), runs `body` with it as $pwfile, and removes it. */
const withPasswordFile = (body: string) =>
  `pwfile=$(mktemp /run/pw.XXXXXX); echo ${Buffer.from(PASSWORD).toString('base64')} | base64 -d > "$pwfile"; ${body}; rc=$?; rm -f "$pwfile"; exit $rc`;

/** Samples `ps -eo args` on every host every 0.2 s until stopped (bounded): the password must never be in a command line. */
function sampleProcesses(): { stop: () => Promise<string[]> } {
  const samples = targets.map((t) =>
    sh(TARGETS[t][0], 'for i in $(seq 1 1500); do [ -e /run/stop-sampling ] && break; ps -eo args; echo ---; sleep 0.2; done; rm -f /run/stop-sampling', 600_000),
  );
  return {
    stop: async () => {
      await Promise.all(targets.map((t) => sh(TARGETS[t][0], 'touch /run/stop-sampling')));
      return (await Promise.all(samples)).map((r) => r.stdout);
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-become-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['lb-01', 'web-01', 'web-02'], pebble: false });
  const p = labPaths(NAME);
  template = path.join(dir, 'bec.j2');
  writeFileSync(template, 'rendered for {{ inventory_hostname }}\n');
  // The password's hash only: its clear text is never in a command line on the hosts.
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: PASSWORD }).toString().trim();
  for (const host of ['web-01', 'web-02', 'lb-01']) {
    const r = await sh(
      host,
      `set -e
for u in alice bob carol; do
  id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo "$u"
  usermod -p '${hash}' "$u"
  install -d -m 700 -o "$u" -g "$u" /home/$u/.ssh
  install -m 600 -o "$u" -g "$u" /root/.ssh/authorized_keys /home/$u/.ssh/authorized_keys
done
cat > /etc/sudoers.d/provision-become-test <<'EOF'
Defaults:alice timestamp_timeout=0
bob ALL=(ALL) NOPASSWD: ALL
Defaults:carol timestamp_type=global
EOF
chmod 440 /etc/sudoers.d/provision-become-test
visudo -cq`,
    );
    expect(r, r.stderr).toMatchObject({ code: 0 });
  }
  inv = path.join(dir, 'inventory.yml');
  writeFileSync(
    inv,
    `defaults:
  identity_file: ${p.sshKey}
  known_hosts: ${p.knownHosts}
  connect_timeout: 5
  become: true
  become_password_env: ${PASSWORD_ENV}
hosts:
  pw: { address: ${PREFIX}.11, user: alice }
  nopw: { address: ${PREFIX}.12, user: bob, jump: pw }
  cached: { address: ${PREFIX}.10, user: carol }
`,
  );
  // carol's timestamp, made in a session of its own before the run (global: valid for every session of hers).
  const args = sshArgs(p.sshKey, p.knownHosts, `${PREFIX}.10`, ['sudo', '-S', '-p', '', '-v']).map((a) => (a === `root@${PREFIX}.10` ? `carol@${PREFIX}.10` : a));
  const v = spawnSync('ssh', args, { input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 30_000 });
  expect(v.status, v.stderr).toBe(0);
  // A real timestamp: sudo's own record of carol's authentication, which every session of hers uses.
  expect((await sh('lb-01', 'test -s /run/sudo/ts/carol')).code).toBe(0);
});

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('become with a password, on real sudo', () => {
  it('asking, NOPASSWD (through a jump host) and cached: managed files carry exactly their content; the password is in no output, file, argv or journal', async () => {
    const sampler = sampleProcesses();
    let first: CliResult;
    try {
      first = await run(playbook(), ['--json', '--diff']);
    } finally {
      const ps = await sampler.stop();
      ps.forEach((text, i) => {
        expect(text.length, `process samples of ${targets[i]}`).toBeGreaterThan(0);
        expect(text.includes(PASSWORD), `the password in a command line on ${targets[i]}`).toBe(false);
      });
    }
    expect(failures(first), output(first)).toEqual([]);
    for (const t of targets) expect(recap(first)[t], t).toMatchObject({ failed: 0, unreachable: 0, changed: Object.keys(files(t)).length + 1 });
    expect(first.code).toBe(2);

    // Exactly their content: no password line in front (it used to be the first line of every stdin).
    for (const t of targets) {
      const r = await sh(TARGETS[t][0], 'cd /srv/bec && for f in *; do printf "%s\\0" "$f"; base64 -w0 "$f"; printf "\\0"; done');
      const parts = r.stdout.split('\0');
      const found: Record<string, string> = {};
      for (let i = 0; i + 1 < parts.length; i += 2) found[parts[i]!] = Buffer.from(parts[i + 1]!, 'base64').toString('utf8');
      expect(found, t).toEqual(files(t));
    }

    // A change to every managed file, converged again with plain output and diffs.
    for (const t of targets) await sh(TARGETS[t][0], 'for f in /srv/bec/file-* /srv/bec/templated; do echo changed >> "$f"; done');
    const plain = await run(playbook(), ['--diff']);
    expect(plain.code, output(plain)).toBe(2);
    expect(output(plain)).toContain('-changed');
    const again = await run(playbook(), ['--json']);
    expect(again.code, output(again)).toBe(0);

    for (const r of [first, plain, again]) {
      expect(output(r).includes(PASSWORD)).toBe(false);
      // Not even masked: the password never reached an output to be masked in.
      expect(output(r)).not.toContain('********');
      expect(output(r)).not.toMatch(/not found|provision-started|provision-timed-out|\[provision sudo/);
    }

    for (const t of targets) {
      const journal = await sh(TARGETS[t][0], withPasswordFile('journalctl --no-pager -o cat | grep -cF -f "$pwfile"'));
      expect(journal.stdout.trim(), `journal of ${t}`).toBe('0');
      const leftIn = await sh(TARGETS[t][0], withPasswordFile('grep -rlIF -f "$pwfile" /srv /tmp /var/tmp /var/lib/provision /root /home /etc /var/log 2>/dev/null; true'));
      expect(leftIn.stdout, `files on ${t} holding the password`).toBe('');
      // sudo never saw a wrong password: nothing but the password ever answered its prompt.
      const bad = await sh(TARGETS[t][0], 'journalctl --no-pager -o cat -t sudo | grep -c "incorrect password" || true');
      expect(bad.stdout.trim(), `incorrect attempts on ${t}`).toBe('0');
    }
  });

  it('a config that fails validation shows its own first line in the error, not the password', async () => {
    const r = await run(
      `
- name: validation
  hosts: all
  tasks:
    - name: refused by its validator
      copy: { dest: /srv/bec/validated, content: "the first line of the candidate\\n", validate: "sh -c 'head -n 1 \\"$1\\" >&2; exit 1' validate %s" }
`,
      ['--json'],
    );
    const failed = failures(r);
    expect(failed.map((e) => e.host).sort()).toEqual([...targets].sort());
    for (const e of failed) expect(String(e.msg)).toMatch(/^validation failed, the live file is untouched: the first line of the candidate$/);
    expect(output(r).includes(PASSWORD)).toBe(false);
  });

  it('a wrong password: that host is unreachable with one clear message after one attempt; hosts where sudo does not ask go on', async () => {
    const before = await sh('web-01', 'journalctl --no-pager -o cat -t sudo | grep -c "incorrect password" || true');
    const r = await run(playbook(), ['--json'], WRONG);
    const down = r.events.find((e) => e.kind === 'host-unreachable' && e.host === 'pw');
    expect(String(down?.reason)).toMatch(/^pw: sudo refused the become password \(from \$PROVISION_TEST_BECOME_PASSWORD\) for alice; nothing was run as root/);
    expect(recap(r)['nopw']).toMatchObject({ failed: 0, unreachable: 0 });
    expect(recap(r)['cached']).toMatchObject({ failed: 0, unreachable: 0 });
    expect(r.code).toBe(3);
    expect(output(r).includes(WRONG)).toBe(false);
    // One attempt (sudo logs "1 incorrect password attempt"), not three with the command's stdin as the next tries.
    const after = await sh('web-01', 'journalctl --no-pager -o cat -t sudo | grep "incorrect password" || true');
    const lines = after.stdout.trim().split('\n').filter(Boolean);
    expect(lines.length - Number(before.stdout.trim())).toBe(1);
    expect(lines.at(-1)).toMatch(/alice : 1 incorrect password attempt/);
  });
});
