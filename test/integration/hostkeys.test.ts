/**
 * Host keys on real sshd (issue 12, item 1): web-01 also listens on port 2222 (a drop-in in
 * /etc/ssh/sshd_config.d, made from its console), reached by provision's CLI as a user would.
 * - its key on port 2222 is accepted by an "[address]:2222" line;
 * - accept_new_host_keys records it once, in that form, and nothing on the next run;
 * - after the host's keys are regenerated, the changed key is refused even with accept_new_host_keys;
 * - a host certificate from a CA made here is accepted through a @cert-authority line alone (also
 *   through a jump host); an expired one and one for another name are refused with the reason.
 * An instance of its own (hk, 10.90.0.0/24), two fresh hosts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { fetchHostCertificate } from '../../src/transport/hostkeys/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { onConsole, pollUntil } from './faults-helpers.ts';

const NAME = 'hk';
const PREFIX = '10.90.0';
const WEB1 = `${PREFIX}.11`;
const WEB2 = `${PREFIX}.12`;
const RUN_BOUND_MS = 120_000;

let dir: string;
let ca: string;

const sh = async (host: string, script: string) => {
  const r = await onConsole(NAME, host, script);
  if (r.code !== 0) throw new Error(`${host}: ${script}\n${r.stdout}${r.stderr}`);
  return r.stdout;
};

/**
 * sshd on 22 and 2222, with `extra` lines; restarted, and waited for on both ports (bounded). The
 * tests restart it several times within seconds: systemd's start limit (5 in 10 s) would refuse the
 * next start ("attempted too often"), so the unit's failure count is reset first.
 */
async function configureSshd(extra = ''): Promise<void> {
  await sh('web-01', `printf 'Port 22\\nPort 2222\\n${extra}' > /etc/ssh/sshd_config.d/60-hostkeys-test.conf && sshd -t && { systemctl reset-failed ssh.service; systemctl restart ssh; }`);
  const up = await pollUntil(async () => {
    const r = await onConsole(NAME, 'web-01', 'ss -ltnH');
    return /:2222\b/.test(r.stdout) && /:22\b/.test(r.stdout);
  }, 20_000);
  expect(up).toBe(true);
}

let inventories = 0;
/** An inventory of web-01 on port 2222 (and web-02 on 22 when web-01 jumps through it). */
function inventory(knownHosts: string, opts: { acceptNew?: boolean; jump?: boolean } = {}): string {
  const p = labPaths(NAME);
  const file = path.join(dir, `inv-${++inventories}.yml`);
  writeFileSync(
    file,
    `defaults:
  user: root
  identity_file: ${p.sshKey}
  known_hosts: ${knownHosts}
  connect_timeout: 10
  accept_new_host_keys: ${opts.acceptNew ?? false}
hosts:
  web-01: { address: ${WEB1}, port: 2222${opts.jump ? ', jump: web-02' : ''} }
${opts.jump ? `  web-02: { address: ${WEB2} }\n` : ''}`,
  );
  return file;
}

const ping = (inv: string): Promise<CliResult> => provision(['ping', '-i', inv], { timeoutMs: RUN_BOUND_MS });
const knownHostsFile = (name: string, text: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
};
const entries = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() && !l.startsWith('#'));

/** web-01's current host key of `type`, "type base64". */
const hostKey = async (type = 'ed25519') => (await sh('web-01', `cat /etc/ssh/ssh_host_${type}_key.pub`)).trim().split(/\s+/).slice(0, 2).join(' ');

/** Signs web-01's ed25519 host key with our CA and installs the certificate (HostCertificate). */
async function installCertificate(id: string, principals: string, validity: string): Promise<void> {
  const pub = path.join(dir, `${id}.pub`);
  writeFileSync(pub, `${await hostKey()}\n`);
  execFileSync('ssh-keygen', ['-q', '-s', ca, '-I', id, '-h', '-n', principals, '-V', validity, pub]);
  const cert = readFileSync(path.join(dir, `${id}-cert.pub`), 'utf8').trim();
  await sh('web-01', `echo '${cert}' > /etc/ssh/ssh_host_ed25519_key-cert.pub`);
  await configureSshd('HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\\n');
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-hostkeys-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['web-01', 'web-02'], pebble: false });
  ca = path.join(dir, 'ca');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'hostkeys-test-ca', '-f', ca]);
  await configureSshd();
});

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('host keys on a real sshd, port 2222', () => {
  it('the known key on port 2222 is accepted through its [address]:2222 line', async () => {
    const file = knownHostsFile('known-2222', `[${WEB1}]:2222 ${await hostKey()}\n`);
    const r = await ping(inventory(file));
    expect(r.stdout).toContain('web-01: pong');
    expect(r.code).toBe(0);
  });

  it('accept_new_host_keys on a fresh known_hosts records the key once, as [address]:2222; the second run records nothing', async () => {
    const file = knownHostsFile('accept-new', '');
    const inv = inventory(file, { acceptNew: true });
    expect((await ping(inv)).code).toBe(0);
    const recorded = entries(file);
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatch(new RegExp(`^\\[${WEB1.replace(/\./g, '\\.')}\\]:2222 ssh-ed25519 `));
    expect(recorded[0]).toBe(`[${WEB1}]:2222 ${await hostKey()}`);
    // OpenSSH finds the recorded line under the same name.
    expect(execFileSync('ssh-keygen', ['-F', `[${WEB1}]:2222`, '-f', file], { encoding: 'utf8' })).toContain('found: line 1');
    expect((await ping(inv)).code).toBe(0);
    expect(entries(file)).toEqual(recorded);
  });

  it("after the host's keys are regenerated, the changed key is refused even with accept_new_host_keys, and not recorded", async () => {
    const file = knownHostsFile('before-regeneration', `[${WEB1}]:2222 ${await hostKey()}\n`);
    await sh('web-01', 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null');
    await configureSshd();
    const r = await ping(inventory(file, { acceptNew: true }));
    expect(r.stdout).toMatch(new RegExp(`web-01: HOST KEY CHANGED for \\[${WEB1.replace(/\./g, '\\.')}\\]:2222: it now offers ssh-ed25519 SHA256:\\S+, which is not the key recorded in .*refusing to connect`));
    expect(r.code).toBe(3);
    expect(entries(file)).toHaveLength(1);
  });
});

describe('host certificates on a real sshd', () => {
  it('a certificate from our CA is accepted through a @cert-authority line alone, on 2222 and through a jump host; nothing is recorded', async () => {
    await installCertificate('valid', WEB1, '-5m:+1h');
    const caLine = `@cert-authority * ${readFileSync(`${ca}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')}\n`;
    const file = knownHostsFile('ca-only', caLine);
    const direct = await ping(inventory(file, { acceptNew: true }));
    expect(direct.stdout).toContain('web-01: pong');
    expect(direct.code).toBe(0);
    expect(entries(file)).toHaveLength(1);

    // What the extra half key exchange costs, per connection to a CA-vouched host (a figure, not asserted).
    const took: string[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const got = await fetchHostCertificate(connect({ host: WEB1, port: 2222 }), 10_000);
      took.push(`${(performance.now() - started).toFixed(0)} ms`);
      expect('certificate' in got && got.algorithm).toBe('ssh-ed25519-cert-v01@openssh.com');
    }
    console.log(`FIGURE certificate fetch from real sshd: ${took.join(', ')}`);

    // Through web-02 (plain key from the lab's known_hosts): the certificate is fetched over the jump too.
    const web2 = readFileSync(labPaths(NAME).knownHosts, 'utf8').split('\n').filter((l) => l.startsWith(`${WEB2} `)).join('\n');
    const viaJump = knownHostsFile('ca-jump', `${caLine}${web2}\n`);
    const jumped = await ping(inventory(viaJump, { jump: true }));
    expect(jumped.stdout).toContain('web-01: pong');
    expect(jumped.code).toBe(0);
  });

  it('an expired certificate and one for another name are refused, with the reason', async () => {
    const file = knownHostsFile('ca-refusing', `@cert-authority * ${readFileSync(`${ca}.pub`, 'utf8').trim()}\n`);
    await installCertificate('expired', WEB1, '20200101:20200102');
    const expired = await ping(inventory(file, { acceptNew: true }));
    expect(expired.stdout).toMatch(/web-01: UNREACHABLE: web-01: host certificate refused: certificate "expired" \(serial 0\) expired at 2020-01-0[12]T/);
    expect(expired.code).toBe(3);

    await installCertificate('elsewhere', 'web-99.example.com', '-5m:+1h');
    const elsewhere = await ping(inventory(file, { acceptNew: true }));
    expect(elsewhere.stdout).toContain(`host certificate refused: certificate "elsewhere" (serial 0) is for "web-99.example.com", not for "${WEB1}"`);
    expect(elsewhere.code).toBe(3);
    expect(entries(file)).toHaveLength(1);
  });
});
