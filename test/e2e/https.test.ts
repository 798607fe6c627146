/**
 * The site as the internet sees it: www.foobar.com on the load balancer, measured from the lab's
 * client namespace. TLS is verified against the root of the lab's ACME CA (Pebble), downloaded
 * from its management endpoint: never -k. Runs after the global setup converged the site; only
 * the failover test changes a host (it stops nginx on one web server) and it restores it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/roles/builtin.ts';
import { roleVars } from '../../src/executor/expand.ts';
import type { Play } from '../../src/executor/index.ts';
import type { Facts } from '../../src/facts/index.ts';
import { loadInventory } from '../../src/inventory/index.ts';
import { renderTemplate } from '../../src/modules/index.ts';
import { getRole } from '../../src/roles/index.ts';
import { address, changedTasks, fromClient, group, INVENTORY, onHost, paths, provision } from './lab-env.ts';

const DOMAIN = 'www.foobar.com';
/** The load balancer the certificate is issued on (the first of its group, in either topology). */
const LB_HOST = group('loadbalancers')[0]!;
const dir = mkdtempSync(path.join(tmpdir(), 'provision-https-'));
const rootCa = path.join(dir, 'pebble-root.pem');
let lb: string;
let webs: string[];

/** curl from the client namespace, www.foobar.com pinned to the load balancer. */
async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return fromClient(['curl', '-sS', '--max-time', '20', '--resolve', `${DOMAIN}:443:${lb}`, '--resolve', `${DOMAIN}:80:${lb}`, ...args]);
}

/** One HTTPS request, chain verified against Pebble's root: status, headers (lower-case names) and body. */
async function get(urlPath: string, extra: string[] = []): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const r = await curl(['--cacert', rootCa, '-D', '-', ...extra, `https://${DOMAIN}${urlPath}`]);
  expect(r.code, r.stderr).toBe(0);
  const [head = '', ...rest] = r.stdout.split(/\r?\n\r?\n/);
  const lines = head.split(/\r?\n/);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1]);
  const headers = Object.fromEntries(lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status, headers, body: rest.join('\n\n') };
}

async function servedBy(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await get('/');
    expect(r.status).toBe(200);
    out.push(r.headers['x-served-by'] ?? '(none)');
  }
  return out;
}

/** HAProxy's own view of its backends, through the admin socket (python3: the host has no socat). */
async function backendStates(): Promise<Record<string, string>> {
  const py = "import socket; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); s.sendall(b'show stat\\n'); print(b''.join(iter(lambda: s.recv(65536), b'')).decode())";
  const r = await onHost(LB_HOST, `python3 -c "${py}"`);
  expect(r.code, r.stderr).toBe(0);
  const states: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const f = line.split(',');
    if (f[0] === 'web' && f[1] !== 'FRONTEND' && f[1] !== 'BACKEND') states[f[1]!] = f[17]!;
  }
  return states;
}

async function waitUntil(what: string, ok: () => Promise<boolean>, attempts = 60): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`gave up waiting until ${what}`);
}

beforeAll(() => {
  lb = address(LB_HOST);
  webs = group('webservers');
  // Pebble makes a new root at every start: the one the site must chain to is the one it serves now.
  const p = paths();
  const pem = execFileSync('curl', ['-sS', '--max-time', '10', '--cacert', p.pebbleCa, p.pebbleRootsUrl], { encoding: 'utf8' });
  expect(pem).toContain('BEGIN CERTIFICATE');
  writeFileSync(rootCa, pem);
});

describe('HTTPS at the load balancer', () => {
  it('serves www.foobar.com over HTTPS with a chain that verifies against the ACME CA root', async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    // The same request with only the system's trust store must fail: the chain really was checked.
    const untrusted = await curl(['-o', '/dev/null', `https://${DOMAIN}/`]);
    expect(untrusted.code).toBe(60);
  });

  it('presents a certificate for www.foobar.com issued by the ACME CA (not the placeholder)', async () => {
    const r = await fromClient([
      'sh', '-c',
      `echo | openssl s_client -connect ${lb}:443 -servername ${DOMAIN} 2>/dev/null | openssl x509 -noout -subject -issuer -ext subjectAltName`,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`subject=CN ?= ?${DOMAIN.replace(/\./g, '\\.')}`));
    expect(r.stdout).toContain(`DNS:${DOMAIN}`);
    expect(r.stdout).toMatch(/issuer=CN ?= ?Pebble Intermediate CA/);
  });

  it('redirects plain HTTP to HTTPS, keeping path and query', async () => {
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `http://${DOMAIN}/some/page?x=1`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^30[12] /);
    expect(r.stdout.split(' ')[1]).toBe(`https://${DOMAIN}/some/page?x=1`);
  });

  it('sends HSTS for two years and no version banner', async () => {
    const r = await get('/');
    expect(r.headers['strict-transport-security']).toBe('max-age=63072000');
    expect(r.headers.server ?? '').not.toMatch(/\d/);
  });

  it('speaks TLS 1.2 and 1.3 only, with strong ciphers and no session tickets', async () => {
    const tls12 = await curl(['--cacert', rootCa, '-o', '/dev/null', '--tlsv1.2', '--tls-max', '1.2', `https://${DOMAIN}/`]);
    expect(tls12.code, tls12.stderr).toBe(0);
    const tls11 = await curl(['--cacert', rootCa, '-o', '/dev/null', '--tlsv1.1', '--tls-max', '1.1', `https://${DOMAIN}/`]);
    expect(tls11.code).toBe(35);
    const weak = await fromClient(['sh', '-c', `echo | openssl s_client -tls1_2 -cipher AES128-SHA -connect ${lb}:443 -servername ${DOMAIN} 2>&1`]);
    expect(weak.stdout).toMatch(/Cipher is \(NONE\)|handshake failure/);
    const strong = await fromClient(['sh', '-c', `echo | openssl s_client -tls1_2 -connect ${lb}:443 -servername ${DOMAIN} -CAfile ${rootCa} 2>&1`]);
    expect(strong.stdout).toMatch(/Cipher is ECDHE-/);
    expect(strong.stdout).toContain('Verify return code: 0 (ok)');
    expect(strong.stdout).not.toContain('TLS session ticket:');
  });
});

describe('load balancing to the web servers', () => {
  it('alternates between the web servers (round robin)', async () => {
    expect(webs.length).toBeGreaterThanOrEqual(2);
    const seen = await servedBy(2 * webs.length + 2);
    expect(new Set(seen)).toEqual(new Set(webs));
    for (let i = 1; i < seen.length; i++) expect(seen[i], seen.join(' ')).not.toBe(seen[i - 1]);
  });

  it('gives the web servers the real client address, never one the client claims', async () => {
    const marker = `provision-e2e-${process.pid}-${Date.now()}`;
    await get('/', ['-A', marker, '-H', 'X-Forwarded-For: 203.0.113.7']);
    const lines: string[] = [];
    for (const w of webs) {
      const r = await onHost(w, `grep -F ${marker} /var/log/nginx/access.log || true`);
      lines.push(...r.stdout.split('\n').filter(Boolean));
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split(' ')[0]).toBe(paths().clientAddress);
  });

  it('keeps stub_status on loopback for the exporter only', async () => {
    const w = webs[0]!;
    const local = await onHost(w, `python3 -c "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/stub_status').read().decode())"`);
    expect(local.code, local.stderr).toBe(0);
    expect(local.stdout).toMatch(/Active connections: \d+/);
    const remote = await fromClient(['curl', '-sS', '--max-time', '5', `http://${address(w)}:8080/stub_status`]);
    expect(remote.code).not.toBe(0);
  });

  it('stays up through the other web server when nginx stops on one, and takes it back', async () => {
    const [down, up] = webs as [string, string];
    await waitUntil('every backend is UP', async () => Object.values(await backendStates()).every((s) => s === 'UP'));
    await onHost(down, 'systemctl stop nginx');
    try {
      // No request fails, not even before the health check notices: HAProxy redispatches.
      const seen = await servedBy(6);
      expect(new Set(seen)).toEqual(new Set([up]));
      await waitUntil(`HAProxy marks ${down} DOWN`, async () => (await backendStates())[down] === 'DOWN');
    } finally {
      await onHost(down, 'systemctl start nginx');
    }
    await waitUntil(`${down} serves again`, async () => (await backendStates())[down] === 'UP');
    expect(new Set(await servedBy(4))).toEqual(new Set(webs));
  });
});

describe('between the load balancer and the web servers', () => {
  it('carries HTTP or TLS as backend_tls says (TLS: a plain request to a web server is refused)', async () => {
    // TLS unless the inventory turns it off (the default is on: docs/edge.md).
    const backendTls = loadInventory(INVENTORY).hosts.get(LB_HOST)!.vars.backend_tls !== false;
    const w = webs[0]!;
    const py = `import urllib.request as u, urllib.error as e\ntry: print(u.urlopen(u.Request('http://${address(w)}/health', headers={'Host': '${DOMAIN}'})).status)\nexcept e.HTTPError as x: print(x.code)`;
    const r = await onHost(LB_HOST, `printf '%b' "${py}" | python3 -`);
    expect(r.code, r.stderr).toBe(0);
    // nginx answers plain HTTP on a TLS port with 400; without backend_tls the app's health is 200.
    expect(r.stdout.trim()).toBe(backendTls ? '400' : '200');
  });
});

describe('certificate lifecycle', () => {
  it('renews through the certbot unit\'s environment and the deploy hook swaps the served certificate', async () => {
    const serial = async () => {
      const r = await fromClient(['sh', '-c', `echo | openssl s_client -connect ${lb}:443 -servername ${DOMAIN} 2>/dev/null | openssl x509 -noout -serial`]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const before = await serial();
    const timer = await onHost(LB_HOST, 'systemctl is-enabled certbot.timer && systemctl is-active certbot.timer');
    expect(timer.stdout.split('\n').filter(Boolean)).toEqual(['enabled', 'active']);
    // What the timer's certbot.service runs, with the environment its drop-in gives it.
    const renew = await onHost(LB_HOST, 'env $(systemctl show -p Environment --value certbot.service) certbot renew --force-renewal --no-random-sleep-on-renew -q', 300_000);
    expect(renew.code, renew.stderr).toBe(0);
    const after = await serial();
    expect(after).not.toBe(before);
    const pem = await onHost(LB_HOST, `stat -c '%a %U' /etc/haproxy/certs/${DOMAIN}.pem`);
    expect(pem.stdout.trim()).toBe('600 root');
    // Still trusted, still the domain.
    expect((await get('/')).status).toBe(200);
  });

  it('a second converge of the TLS and web roles changes nothing and asks the CA for nothing', async () => {
    const playbook = path.join(dir, 'tls-web.yml');
    writeFileSync(
      playbook,
      '- name: web\n  hosts: webservers\n  roles: [nginx]\n- name: lb\n  hosts: loadbalancers\n  roles: [haproxy, certificates]\n',
    );
    const r = await provision(['--playbook', playbook, '--json', '--limit', 'loadbalancers,webservers']);
    expect(r.code, r.stderr).toBe(0);
    expect(changedTasks(r).map((e) => `${e.host}: ${e.task}`)).toEqual([]);
  });
});

describe('HAProxy configuration', () => {
  /** The haproxy role's config for lb-01 as the converge would render it. */
  function renderedConfig(): { text: string; certPath: string } {
    const inventory = loadInventory(INVENTORY);
    const host = inventory.hosts.get(LB_HOST)!;
    const role = getRole('haproxy')!;
    const vars = roleVars('haproxy', host, { vars: {} } as unknown as Play);
    const tasks = role.tasks({
      host,
      facts: {} as Facts,
      vars,
      inventory,
      hostsIn: (g) => (inventory.groups.get(g) ?? []).map((h) => inventory.hosts.get(h)!),
      file: (rel) => path.resolve(import.meta.dirname, '../../src/roles/haproxy', rel),
    });
    const t = tasks.find((x) => x.module === 'template')!;
    const p = t.params as { src: string; vars: Record<string, unknown> };
    return { text: renderTemplate(p.src, p.vars), certPath: String(p.vars.cert_path) };
  }

  async function haproxyCheck(text: string): Promise<{ code: number; out: string }> {
    const b64 = Buffer.from(text).toString('base64');
    const r = await onHost(LB_HOST, `f=$(mktemp); echo ${b64} | base64 -d > "$f"; haproxy -c -f "$f"; c=$?; rm -f "$f"; exit $c`);
    return { code: r.code, out: r.stdout + r.stderr };
  }

  it('the rendered template passes haproxy -c on lb-01 and is the live config', async () => {
    const { text } = renderedConfig();
    expect(text).toMatch(/bind \*:443 ssl crt \/etc\/haproxy\/certs\/www\.foobar\.com\.pem/);
    for (const w of webs) expect(text).toContain(`server ${w} ${address(w)}:80`);
    const ok = await haproxyCheck(text);
    expect(ok.code, ok.out).toBe(0);
    const live = await onHost(LB_HOST, 'cat /etc/haproxy/haproxy.cfg');
    expect(live.stdout).toBe(text);
  });

  it('the same check refuses a broken variant (the check can fail)', async () => {
    const { text } = renderedConfig();
    const broken = text.replace('balance roundrobin', 'balance roundrobinn');
    expect(broken).not.toBe(text);
    const bad = await haproxyCheck(broken);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/balance only supports/);
  });
});

afterAll(async () => {
  // Leave both web servers serving even when the failover test failed half-way.
  for (const w of webs ?? []) await onHost(w, 'systemctl is-active --quiet nginx || systemctl start nginx');
});
