/**
 * accept-certificate (certificates role, push.ts): the forced command a peer load balancer runs for
 * the issuer's push key. The rendered script is run by the real sh with the real openssl on
 * certificates made here (a root, an intermediate, leaves signed by it); only haproxy, systemctl
 * and logger are stand-ins on PATH that record their calls. Each bad PEM must be refused with the
 * live file untouched (same bytes, same inode) and no reload.
 */
import { spawnSync, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderTemplate } from '../../../src/modules/index.ts';
import { signCertificate } from '../../../src/pki/sign.ts';
import { ACCEPT_MAX_BYTES } from '../../../src/roles/certificates/push.ts';

const DOMAIN = 'www.foobar.com';
const TEMPLATE = path.resolve(import.meta.dirname, '../../../src/roles/certificates/templates/accept-certificate.sh.njk');
const DAY = 86_400_000;

let dir: string;
let script: string;
let live: string;
let calls: string;
const pem: Record<string, string> = {};
const OLD = 'the certificate served before\n';

function key(name: string): string {
  const file = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], { stdio: 'ignore' });
  return file;
}

async function cert(name: string, opts: { subjectKey: string; cn: string; ca: boolean; issuer?: { certFile: string; keyFile: string }; dns?: string; from?: number; to?: number }): Promise<string> {
  const workDir = mkdtempSync(path.join(dir, `sign-${name}-`));
  const text = await signCertificate({
    workDir,
    subjectKeyFile: opts.subjectKey,
    subject: `/CN=${opts.cn}`,
    issuer: opts.issuer,
    extensions: {
      lines: opts.ca ? ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign'] : ['basicConstraints = critical, CA:FALSE', 'extendedKeyUsage = serverAuth'],
      altNames: opts.dns ? [`DNS.1 = ${opts.dns}`] : undefined,
    },
    notBefore: new Date(Date.now() + (opts.from ?? -DAY)),
    notAfter: new Date(Date.now() + (opts.to ?? 90 * DAY)),
  });
  const file = path.join(dir, `${name}.crt`);
  writeFileSync(file, text);
  return file;
}

const read = (f: string) => readFileSync(f, 'utf8');

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-accept-'));
  const rootKey = key('root');
  const root = await cert('root', { subjectKey: rootKey, cn: 'Test Root', ca: true, to: 3650 * DAY });
  const interKey = key('inter');
  const inter = await cert('inter', { subjectKey: interKey, cn: 'Test Intermediate', ca: true, issuer: { certFile: root, keyFile: rootKey }, to: 1000 * DAY });
  const otherInterKey = key('other-inter');
  const otherInter = await cert('other-inter', { subjectKey: otherInterKey, cn: 'Other Intermediate', ca: true, issuer: { certFile: root, keyFile: rootKey }, to: 1000 * DAY });
  const by = { certFile: inter, keyFile: interKey };
  const siteKey = key('site');
  const site = await cert('site', { subjectKey: siteKey, cn: DOMAIN, ca: false, issuer: by, dns: DOMAIN });
  const otherKey = key('other');
  const other = await cert('other', { subjectKey: otherKey, cn: 'www.example.org', ca: false, issuer: by, dns: 'www.example.org' });
  const expired = await cert('expired', { subjectKey: siteKey, cn: DOMAIN, ca: false, issuer: by, dns: DOMAIN, from: -30 * DAY, to: -DAY });
  const stranger = await cert('stranger', { subjectKey: siteKey, cn: DOMAIN, ca: false, issuer: { certFile: otherInter, keyFile: otherInterKey }, dns: DOMAIN });
  const k = (f: string) => read(f);
  // What the issuer's deploy hook sends: fullchain (leaf, intermediate), then the key.
  pem.good = k(site) + k(inter) + k(siteKey);
  pem.garbage = 'this is not a certificate\n'.repeat(20);
  pem.wrongKey = k(site) + k(inter) + k(otherKey);
  pem.otherName = k(other) + k(inter) + k(otherKey);
  pem.expired = k(expired) + k(inter) + k(siteKey);
  pem.noChain = k(site) + k(siteKey);
  pem.wrongChain = k(stranger) + k(inter) + k(siteKey);
  pem.twoKeys = k(site) + k(inter) + k(siteKey) + k(otherKey);
  pem.tooBig = k(site) + k(inter) + k(siteKey) + '#'.repeat(ACCEPT_MAX_BYTES);
  pem.empty = '';

  live = path.join(dir, 'certs', `${DOMAIN}.pem`);
  // Stand-ins: haproxy -c checks that the config it is given serves the new file (not the live one).
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  calls = path.join(dir, 'calls');
  const stub = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${calls}\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  stub('haproxy', `[ -f ${path.join(dir, 'haproxy-fails')} ] && { echo 'haproxy: [ALERT] stand-in failure' >&2; exit 1; }\ncfg=$4\ncrt=$(sed -n 's/.* crt \\([^ ]*\\).*/\\1/p' "$cfg")\ncase "$crt" in ${live}) echo 'checked the live file' >&2; exit 3 ;; esac\nopenssl x509 -noout -in "$crt"`);
  stub('systemctl', '[ "$1" = is-active ] && exit 0; exit 0');
  stub('logger', 'exit 0');
  process.env.PATH = `${bin}:${process.env.PATH}`;
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function setUp(): void {
  const certs = path.join(dir, 'certs');
  rmSync(certs, { recursive: true, force: true });
  mkdirSync(certs, { mode: 0o700 });
  writeFileSync(live, OLD, { mode: 0o600 });
  writeFileSync(path.join(dir, 'haproxy.cfg'), `frontend https\n    bind *:443 ssl crt ${live} alpn h2,http/1.1\n`);
  script = path.join(dir, 'accept-certificate');
  writeFileSync(
    script,
    renderTemplate(TEMPLATE, {
      domain: DOMAIN,
      cert_path: live,
      haproxy_cfg: path.join(dir, 'haproxy.cfg'),
      max_bytes: ACCEPT_MAX_BYTES,
      self_path: script,
      push_user: 'provision-cert',
      metrics_script: path.join(dir, 'no-metrics-script'),
    }),
  );
  writeFileSync(calls, '');
  rmSync(path.join(dir, 'haproxy-fails'), { force: true });
}

const accept = (input: string) => spawnSync('sh', [script], { input, encoding: 'utf8', timeout: 60_000 });

describe('accept-certificate (the forced command of the certificate push)', () => {
  it.runIf(process.getuid?.() === 0)('installs a good PEM 0600 root in place of the live one, checks HAProxy with it, reloads, logs one line', () => {
    setUp();
    const r = accept(pem.good!);
    expect(r.status, r.stderr).toBe(0);
    expect(read(live)).toBe(pem.good);
    const st = statSync(live);
    expect(st.mode & 0o777).toBe(0o600);
    expect(st.uid).toBe(0);
    const log = read(calls);
    expect(log).toMatch(/^haproxy -c -q -f \S+/m);
    expect(log).toContain('systemctl reload haproxy');
    expect(log.match(/^logger .*installed serial \S+ for www\.foobar\.com/gm)).toHaveLength(1);
    expect(readdirNames()).toEqual([`${DOMAIN}.pem`]); // no temporary file left beside it
    // The same PEM again: nothing to do, no reload.
    writeFileSync(calls, '');
    expect(accept(pem.good!).status).toBe(0);
    expect(read(calls)).not.toContain('systemctl reload');
  });

  const bad: Array<[string, RegExp]> = [
    ['garbage', /exactly one private key, found 0/],
    ['wrongKey', /the private key is not the certificate's/],
    ['otherName', /does not name www\.foobar\.com/],
    ['expired', /the certificate has ended/],
    ['noChain', /the chain that issued it, found 1 certificate/],
    ['wrongChain', /not issued by the chain sent with it/],
    ['twoKeys', /exactly one private key, found 2/],
    ['tooBig', /more than 65536 bytes/],
    ['empty', /nothing on stdin/],
  ];
  for (const [name, why] of bad) {
    it.runIf(process.getuid?.() === 0)(`refuses ${name}: exit 1, the live file untouched, no reload`, () => {
      setUp();
      const before = statSync(live);
      const r = accept(pem[name]!);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toContain('unchanged');
      expect(read(live)).toBe(OLD);
      expect(statSync(live).ino).toBe(before.ino);
      expect(read(calls)).not.toContain('systemctl reload');
      expect(read(calls)).toMatch(/^logger .*refused/m);
      expect(readdirNames()).toEqual([`${DOMAIN}.pem`]);
    });
  }

  it.runIf(process.getuid?.() === 0)('refuses a good PEM when haproxy -c fails with it: the live file untouched', () => {
    setUp();
    writeFileSync(path.join(dir, 'haproxy-fails'), '');
    const r = accept(pem.good!);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/haproxy -c fails with it/);
    expect(read(live)).toBe(OLD);
    expect(read(calls)).not.toContain('systemctl reload');
    expect(readdirNames()).toEqual([`${DOMAIN}.pem`]);
  });
});

function readdirNames(): string[] {
  const certs = path.dirname(live);
  return existsSync(certs) ? execFileSync('ls', ['-A', certs], { encoding: 'utf8' }).split('\n').filter(Boolean) : [];
}
