/**
 * The edge on real hosts (docs/edge.md): two load balancers holding a floating address with
 * keepalived, TLS from them to the web server with a certificate from the internal CA. Instance
 * `edgep` (10.87.0.0/24): lb-01, lb-02, web-01, converged once by the real CLI.
 *
 * - The ACME certificate (Pebble's DNS answers with the floating address) obtained by lb-01 only and
 *   served by both; a renewal on lb-01 reaches lb-02 at once (pushed by lb-01's deploy hook over SSH
 *   with a key whose only command is accept-certificate), without a converge; a bad PEM pushed with
 *   that key is refused and lb-02's file stays as it was; a failed renewal shows in `provision drift`
 *   and the next converge renews.
 * - A bounded capture on the lab bridge while requests go through: TLS between load balancer and
 *   web server, never plaintext HTTP (and the same check does catch a plain request: it can fail).
 * - A bounded loop of HTTPS requests to the floating address from the client namespace while
 *   HAProxy stops on the holder, then the new holder's host dies: the address moves, requests go on;
 *   failed requests and takeover times printed as FIGURE lines. A load balancer that returns does not
 *   take the address back.
 * The web server's app is a stand-in (a small HTTP server on 127.0.0.1:3000, answering 200): the app
 * role needs the database tier, which is not what this file is about.
 */
import { execFileSync } from 'node:child_process';
import { captureOnBridge } from './bridge-capture.ts';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inClient, labDown, labPaths, labUp, linkDown, linkUp, startHost, stopHost } from '../../src/lab/index.ts';
import { VIRTUAL_IP_OCTET } from '../../src/lab/layout.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { onConsole, pollUntil, recap, writePlaybook } from './faults-helpers.ts';

const NAME = 'edgep';
const PREFIX = '10.87.0';
const VIP = `${PREFIX}.${VIRTUAL_IP_OCTET}`;
const DOMAIN = 'www.foobar.com';
const LBS = ['lb-01', 'lb-02'] as const;
const ADDRESS: Record<string, string> = { 'lb-01': `${PREFIX}.10`, 'lb-02': `${PREFIX}.13`, 'web-01': `${PREFIX}.11` };
const RUN_BOUND_MS = 600_000;
const ENV = { PROVISION_SECRET_KEEPALIVED_AUTH_PASS: 'edge-pw1' };
const LB_PEM = `/etc/haproxy/certs/${DOMAIN}.pem`;
/** lb-01's push as its deploy hook makes it (key and pinned host key from the converge), to the address that follows. */
const PUSH_SSH =
  'ssh -T -i /etc/provision/certificate-push/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes ' +
  '-o UserKnownHostsFile=/etc/provision/certificate-push/known_hosts.lb-02 -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=10 -l provision-cert';

let dir: string;
let inv: string;
let playbook: string;
let trust: string;

const sh = (host: string, script: string, timeoutMs = 60_000) => onConsole(NAME, host, script, timeoutMs);
const figure = (name: string, value: string) => console.log(`FIGURE ${name}: ${value}`);
const run = (extra: string[] = []): Promise<CliResult> => provision(['-i', inv, '-p', playbook, '--json', ...extra], { timeoutMs: RUN_BOUND_MS, env: ENV });

/** Which load balancers hold the floating address now (read on their consoles, not over the address). */
async function holders(): Promise<string[]> {
  const out: string[] = [];
  for (const lb of LBS) {
    const r = await sh(lb, `ip -4 -o addr show dev eth0 | grep -qF ' ${VIP}/' && echo yes || echo no`, 10_000).catch(() => ({ stdout: 'no' }));
    if (r.stdout.trim() === 'yes') out.push(lb);
  }
  return out;
}

/** One HTTPS request to the floating address from the client namespace, the chain checked against both load balancers' certificates. */
async function request(): Promise<{ ok: boolean; startedAt: number; detail: string }> {
  const startedAt = Date.now();
  const r = await inClient(
    ['curl', '-sS', '--max-time', '2', '--cacert', trust, '--resolve', `${DOMAIN}:443:${VIP}`, '-o', '/dev/null', '-w', '%{http_code}', `https://${DOMAIN}/`],
    NAME,
    { timeoutMs: 10_000 },
  );
  return { ok: r.code === 0 && r.stdout.trim() === '200', startedAt, detail: `${r.code} ${r.stdout.trim()} ${r.stderr.trim()}` };
}

interface Outage {
  failed: number;
  total: number;
  /** ms from the fault to the address seen on the peer. */
  takeoverMs: number;
  /** Requests started after the address had moved that still failed. */
  failedAfterTakeover: string[];
}

/**
 * Requests in a loop (bounded by count and time) while `fault` runs; the takeover is when `peer`
 * is seen holding the address (polled on its console every 100 ms).
 */
async function throughFault(peer: string, fault: () => Promise<void>): Promise<Outage> {
  const results: Array<{ ok: boolean; startedAt: number; detail: string }> = [];
  let movedAt: number | undefined;
  const t0 = Date.now();
  let stop = false;
  const loop = (async () => {
    for (let i = 0; i < 300 && !stop && Date.now() - t0 < 60_000; i++) {
      results.push(await request());
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await new Promise((r) => setTimeout(r, 1000)); // some requests before the fault
  const faultAt = Date.now();
  await fault();
  movedAt = await pollUntil(async () => ((await holders()).includes(peer) ? Date.now() : undefined), 30_000, 100);
  // Keep requesting a while after the move: those must all succeed.
  const end = Date.now() + 4000;
  await pollUntil(async () => Date.now() >= end || undefined, 10_000, 200);
  stop = true;
  await loop;
  const after = results.filter((r) => movedAt !== undefined && r.startedAt > movedAt + 500 && !r.ok).map((r) => r.detail);
  return {
    failed: results.filter((r) => !r.ok).length,
    total: results.length,
    takeoverMs: movedAt === undefined ? Number.NaN : movedAt - faultAt,
    failedAfterTakeover: after,
  };
}

const APP = `import http.server as h
class H(h.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'ok\\n'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
h.ThreadingHTTPServer(('127.0.0.1', 3000), H).serve_forever()
`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-edge-'));
  // Pebble's DNS answers with the floating address: the http-01 challenge reaches whichever load balancer holds it.
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['lb-01', 'lb-02', 'web-01'], pebble: true, acmeOctet: VIRTUAL_IP_OCTET });
  const p = labPaths(NAME);
  inv = path.join(dir, 'edge.yml');
  writeFileSync(
    inv,
    `defaults:
  user: root
  identity_file: ${p.sshKey}
  known_hosts: ${p.knownHosts}
  connect_timeout: 5
hosts:
  lb-01: { address: ${ADDRESS['lb-01']}, groups: [loadbalancers] }
  lb-02: { address: ${ADDRESS['lb-02']}, groups: [loadbalancers] }
  web-01: { address: ${ADDRESS['web-01']}, groups: [webservers] }
vars:
  domain: ${DOMAIN}
  admin_cidrs: [${PREFIX}.1/32]
  monitoring_cidrs: [${PREFIX}.1/32]
  acme_directory_url: https://${PREFIX}.1:14000/dir
  acme_ca_bundle: ${p.pebbleCa}
  acme_email: ops@foobar.com
  lb_virtual_ip: ${VIP}/24
  keepalived_auth_pass: !secret keepalived_auth_pass
`,
  );
  playbook = writePlaybook(
    dir,
    `- name: firewall
  hosts: all
  roles: [firewall]
- name: web
  hosts: webservers
  roles: [nginx]
- name: edge
  hosts: loadbalancers
  roles: [haproxy, keepalived, certificates]
`,
  );
  const app = await sh('web-01', `cat > /root/edge-app.py <<'EOF'\n${APP}EOF\nsystemd-run --unit=edge-app -p Restart=always /usr/bin/python3 /root/edge-app.py`);
  expect(app.code, app.stderr).toBe(0);
  const r = await run();
  expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(2);
  // Pebble makes a new root at every start: the site must chain to the one it serves now.
  const root = execFileSync('curl', ['-sS', '--max-time', '10', '--cacert', p.pebbleCa, p.pebbleRootsUrl], { encoding: 'utf8' });
  expect(root).toContain('BEGIN CERTIFICATE');
  trust = path.join(dir, 'pebble-root.pem');
  writeFileSync(trust, root);
}, RUN_BOUND_MS + 120_000);

afterAll(async () => {
  for (const lb of LBS) {
    await linkUp(lb, NAME).catch(() => {});
    await startHost(lb, NAME).catch(() => {});
  }
  await labDown(NAME);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 180_000);

/** The serial of the certificate a load balancer presents at its own address (not the floating one). */
async function servedSerial(lb: string): Promise<string> {
  const r = await inClient(['sh', '-c', `echo | openssl s_client -connect ${ADDRESS[lb]}:443 -servername ${DOMAIN} -CAfile ${trust} 2>/dev/null | openssl x509 -noout -serial -issuer`], NAME, { timeoutMs: 20_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/issuer=CN ?= ?Pebble Intermediate CA/);
  return r.stdout.split('\n')[0]!.trim();
}

describe('the ACME certificate: obtained once, served by both load balancers', () => {
  it('both serve the same certificate from the ACME CA, obtained by lb-01 only', async () => {
    const [one, two] = [await servedSerial('lb-01'), await servedSerial('lb-02')];
    expect(one).toBe(two);
    expect((await sh('lb-02', 'ls /etc/letsencrypt/live 2>/dev/null | wc -l')).stdout.trim()).toBe('0');
    expect((await sh('lb-02', `stat -c '%a %U' /etc/haproxy/certs/${DOMAIN}.pem`)).stdout.trim()).toBe('600 root');
    expect((await request()).ok).toBe(true);
  });

  it('a renewal on lb-01 (through the floating address) reaches lb-02 at once, without a converge; a converge after it changes nothing', async () => {
    const before = await servedSerial('lb-01');
    // What the certbot timer runs, with the environment its drop-in gives it.
    const renew = await sh('lb-01', 'env $(systemctl show -p Environment --value certbot.service) certbot renew --force-renewal --no-random-sleep-on-renew -q', 300_000);
    expect(renew.code, renew.stderr).toBe(0);
    const renewedAt = Date.now();
    const renewed = await servedSerial('lb-01');
    expect(renewed).not.toBe(before);
    // lb-02 serves it within a bounded poll: pushed by lb-01's deploy hook, no converge ran.
    const reached = await pollUntil(async () => (await servedSerial('lb-02').catch(() => '')) === renewed || undefined, 60_000, 1000);
    expect(reached, (await sh('lb-01', 'journalctl -t provision-haproxy-cert -o cat --no-pager | tail -n 5')).stdout).toBe(true);
    figure('renewal on lb-01 → served by lb-02 (push)', `${Date.now() - renewedAt} ms after certbot returned (upper bound: poll every 1 s)`);
    const log = await sh('lb-02', 'journalctl -t provision-accept-certificate -o cat --no-pager | tail -n 1');
    expect(log.stdout).toMatch(/^installed serial \S+ for www\.foobar\.com/);
    expect((await sh('lb-02', `stat -c '%a %U %G' ${LB_PEM}`)).stdout.trim()).toBe('600 root root');
    // Written as the converge writes it: the next converge copies nothing, anywhere.
    const r = await run();
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(0);
    for (const counts of Object.values(recap(r))) expect(counts.changed).toBe(0);
  }, RUN_BOUND_MS);

  it('the push key runs accept-certificate only: a bad PEM (garbage, another key, another name) or a command is refused, lb-02\'s file untouched', async () => {
    const fileState = async () => (await sh('lb-02', `sha256sum ${LB_PEM}; stat -c '%i %a %U' ${LB_PEM}`)).stdout;
    const before = await fileState();
    const live = `/etc/letsencrypt/live/${DOMAIN}`;
    const cases: Array<[string, string, RegExp]> = [
      ['garbage', 'head -c 3000 /dev/urandom | base64', /exactly one private key, found 0/],
      ['another key', `{ cat ${live}/fullchain.pem; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256; }`, /the private key is not the certificate's/],
      [
        'another name',
        `d=$(mktemp -d) && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=www.example.org -keyout $d/k -out $d/c 2>/dev/null && cat $d/c ${live}/chain.pem $d/k`,
        /does not name www\.foobar\.com/,
      ],
    ];
    for (const [what, make, why] of cases) {
      const r = await sh('lb-01', `{ ${make}; } | ${PUSH_SSH} ${ADDRESS['lb-02']}; echo "exit=$?"`);
      expect(r.stdout, `${what}: ${r.stderr}`).toContain('exit=1');
      expect(r.stdout + r.stderr, what).toMatch(why);
    }
    // The key asks for another command: the forced command runs instead (and finds nothing on stdin).
    const cmd = await sh('lb-01', `${PUSH_SSH} ${ADDRESS['lb-02']} 'cat /etc/shadow' </dev/null; echo "exit=$?"`);
    expect(cmd.stdout).toContain('exit=1');
    expect(cmd.stdout + cmd.stderr).toMatch(/nothing on stdin/);
    expect(cmd.stdout).not.toContain('root:');
    expect(await fileState()).toBe(before);
    const refusals = await sh('lb-02', 'journalctl -t provision-accept-certificate -o cat --no-pager | grep -c "^refused" || true');
    expect(Number(refusals.stdout.trim())).toBeGreaterThanOrEqual(4);
  }, 120_000);

  it('a failed renewal is reported by provision drift; the next converge renews and clears it', async () => {
    // The renewal service fails once (a runtime drop-in, removed right after: the unit stays "failed").
    const dropin = '/run/systemd/system/certbot.service.d/zz-edge-test.conf';
    const fail = await sh(
      'lb-01',
      `mkdir -p ${path.dirname(dropin)} && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' > ${dropin} && systemctl daemon-reload && ` +
        `{ systemctl start certbot.service || true; } && rm -f ${dropin} && systemctl daemon-reload && systemctl is-failed certbot.service`,
    );
    expect(fail.stdout.trim()).toBe('failed');
    const drift = async () => {
      const d = await provision(['drift', '-i', inv, '-p', playbook, '--json'], { timeoutMs: RUN_BOUND_MS, env: ENV });
      const e = d.events.find((x) => x.kind === 'drift') as { hosts: Record<string, { drifted: boolean; changes: string[] }> } | undefined;
      expect(e, d.stdout.slice(-2000) + d.stderr).toBeDefined();
      return { code: d.code, hosts: e!.hosts };
    };
    const before = await drift();
    expect(before.code).toBe(2);
    expect(before.hosts['lb-01']!.changes.join('\n')).toContain('certificate for www.foobar.com ends in more than 14 days and its renewal is not failing');
    expect(before.hosts['lb-02']!.drifted).toBe(false);
    const r = await run();
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(2);
    expect((await sh('lb-01', 'systemctl is-failed certbot.service')).stdout.trim()).not.toBe('failed');
    expect((await drift()).code).toBe(0);
  }, RUN_BOUND_MS);
});

describe('TLS from the load balancers to the web server, from the internal CA', () => {
  it('a second converge changes nothing (no certificate issued again)', async () => {
    const r = await run();
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(0);
    for (const counts of Object.values(recap(r))) expect(counts.changed).toBe(0);
  }, RUN_BOUND_MS);

  it('keeps the CA on the control machine, key 0600; the web server holds its certificate 0600 for its name and address', async () => {
    const pki = path.join(dir, 'edge.pki');
    expect(statSync(pki).mode & 0o777).toBe(0o700);
    const state = JSON.parse(readFileSync(path.join(pki, 'state.json'), 'utf8')) as { current: string };
    expect(statSync(path.join(pki, 'ca', state.current, 'key.pem')).mode & 0o777).toBe(0o600);
    const leaf = await sh('web-01', `stat -c '%a %U' /etc/nginx/tls/backend.pem; openssl x509 -in /etc/nginx/tls/backend.pem -noout -ext subjectAltName`);
    expect(leaf.stdout).toContain('600 root');
    expect(leaf.stdout).toMatch(/DNS:web-01, IP Address:10\.87\.0\.11/);
    // HAProxy's view: the backend is UP through verified TLS.
    const cfg = await sh('lb-01', 'grep -E "^ +(default-server|server web-01)" /etc/haproxy/haproxy.cfg');
    expect(cfg.stdout).toMatch(/ssl verify required ca-file \/etc\/haproxy\/backend-ca\.pem/);
    expect(cfg.stdout).toContain(`server web-01 ${ADDRESS['web-01']}:80 verifyhost web-01`);
  });

  /** A bounded capture on the bridge of the traffic to and from the web server's port 80, as text. */
  const capture = (during: () => Promise<void>) => captureOnBridge({ instance: NAME, dir, filter: `tcp port 80 and host ${ADDRESS['web-01']}` }, during);

  const PLAINTEXT_HTTP = /(GET|HEAD|POST) \/\S* HTTP\/1\.[01]|HTTP\/1\.[01] \d{3} /;

  it('no plaintext HTTP crosses the bridge between load balancer and web server (bounded capture)', async () => {
    const { text, handshakes, summary } = await capture(async () => {
      for (let i = 0; i < 5; i++) expect((await request()).ok).toBe(true);
    });
    expect(text.split('\n').length, `tcpdump: ${summary}`).toBeGreaterThan(10);
    expect(handshakes).toBeGreaterThan(0);
    expect(text).not.toMatch(PLAINTEXT_HTTP);
    expect(text).not.toContain('X-Served-By');
    figure('capture LB↔web', `${text.split('\n').filter((l) => / IP /.test(l)).length} packets, ${handshakes} with a TLS handshake record, 0 plaintext HTTP`);
  });

  it('the same capture check does see a plaintext request (it can fail)', async () => {
    const py = `import socket; s=socket.create_connection(('${ADDRESS['web-01']}', 80), 5); s.sendall(b'GET /plaintext-probe HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); print(s.recv(4096)[:12])`;
    const { text, summary } = await capture(async () => {
      const r = await sh('lb-01', `python3 -c "${py}"`);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('400'); // nginx answers a plain request on its TLS port with 400
    });
    expect(text, `tcpdump: ${summary}`).toMatch(PLAINTEXT_HTTP);
    expect(text).toContain('/plaintext-probe');
  });
});

describe('the load-balancer pair on a floating address', () => {
  it('one load balancer holds the address; VRRP passes only between the pair', async () => {
    const held = await pollUntil(async () => ((await holders()).length === 1 ? true : undefined), 20_000, 250);
    expect(held).toBe(true);
    for (const lb of LBS) {
      const other = LBS.find((x) => x !== lb)!;
      const rules = await sh(lb, 'ufw status | grep -i vrrp');
      expect(rules.stdout.trim().split('\n')).toHaveLength(1);
      expect(rules.stdout).toContain(ADDRESS[other]);
    }
    const web = await sh('web-01', 'ufw status | grep -ci vrrp || true');
    expect(web.stdout.trim()).toBe('0');
    expect((await request()).ok).toBe(true);
  });

  it('HAProxy stopped on the holder: the address moves to the peer, requests go on; back, it stays put', async () => {
    const [holder] = await holders();
    const peer = LBS.find((x) => x !== holder)!;
    const o = await throughFault(peer, async () => {
      const r = await sh(holder!, 'systemctl stop haproxy');
      expect(r.code).toBe(0);
    });
    figure('takeover after HAProxy stopped', `${o.takeoverMs} ms; ${o.failed} of ${o.total} requests failed (loop every ~100 ms, 2 s timeout)`);
    expect(Number.isNaN(o.takeoverMs)).toBe(false);
    expect(o.failedAfterTakeover).toEqual([]);
    expect(await holders()).toEqual([peer]);
    // HAProxy back on the old holder: the address does not move back (nopreempt).
    expect((await sh(holder!, 'systemctl start haproxy')).code).toBe(0);
    await pollUntil(async () => (await sh(holder!, 'systemctl is-active haproxy')).stdout.trim() === 'active' || undefined, 10_000);
    await new Promise((r) => setTimeout(r, 5000)); // several advert intervals and the check's rise
    expect(await holders()).toEqual([peer]);
  }, 180_000);

  it('the holder host dies (link cut, then powered off): the address moves, requests go on; rebooted, it stays put', async () => {
    const [holder] = await holders();
    const peer = LBS.find((x) => x !== holder)!;
    // Cut the link first, so the host cannot say goodbye (as a crash): the peer must notice the silence.
    const o = await throughFault(peer, async () => {
      await linkDown(holder!, NAME);
    });
    figure('takeover after the holder host died', `${o.takeoverMs} ms; ${o.failed} of ${o.total} requests failed (loop every ~100 ms, 2 s timeout)`);
    expect(Number.isNaN(o.takeoverMs)).toBe(false);
    expect(o.failedAfterTakeover).toEqual([]);
    await stopHost(holder!, NAME);
    await linkUp(holder!, NAME);
    await startHost(holder!, NAME);
    await pollUntil(async () => (await sh(holder!, 'systemctl is-active keepalived')).stdout.trim() === 'active' || undefined, 30_000);
    await new Promise((r) => setTimeout(r, 5000));
    expect(await holders()).toEqual([peer]);
    expect((await request()).ok).toBe(true);
  }, 240_000);
});
