/** The nginx, haproxy and certificates roles without a host: var checks and what they render. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import { renderTemplate, type Task } from '../../../src/modules/index.ts';
import { role as certificates, watchTask } from '../../../src/roles/certificates/index.ts';
import { role as haproxy } from '../../../src/roles/haproxy/index.ts';
import { role as nginx } from '../../../src/roles/nginx/index.ts';
import type { RoleContext, RoleDef } from '../../../src/roles/types.ts';
import { problemsOf, roleVarsFor } from './helpers.ts';

const host = (name: string, address: string, groups: string[], vars: Record<string, unknown> = {}): Host =>
  ({ name, address, groups, vars, connection: {} }) as unknown as Host;
const lb = host('lb-01', '10.9.0.10', ['loadbalancers']);
const webs = [host('web-01', '10.9.0.11', ['webservers']), host('web-02', '10.9.0.12', ['webservers'], { private_address: '192.168.5.12' })];
const groups: Record<string, Host[]> = { loadbalancers: [lb], webservers: webs };
const site = { domain: 'www.foobar.com', acme_email: 'ops@foobar.com' };

function expand(role: RoleDef, h: Host, vars: Record<string, unknown> = {}): Task[] {
  return role.tasks({
    host: h,
    facts: {} as Facts,
    vars: roleVarsFor<RoleContext['vars']>(role, h, { ...site, ...h.vars, ...vars }),
    inventory: { name: 'site', file: '/srv/provision/inventory/site.yml' } as Inventory,
    hostsIn: (g) => groups[g] ?? [],
    file: (rel) => path.resolve(import.meta.dirname, '../../../src/roles', role.name, rel),
  });
}

function rendered(tasks: Task[]): string {
  const t = tasks.find((x) => x.module === 'template')!;
  const p = t.params as { src: string; vars: Record<string, unknown> };
  return renderTemplate(p.src, p.vars);
}

describe('nginx role', () => {
  it('listens on the private address, trusts only the load balancers for the client address', () => {
    const conf = rendered(expand(nginx, webs[1]!, { backend_tls: false }));
    expect(conf).toContain('listen 192.168.5.12:80 default_server;');
    expect(conf.match(/set_real_ip_from (\S+);/g)).toEqual(['set_real_ip_from 10.9.0.10;']);
    expect(conf).toContain('add_header X-Served-By web-02 always;');
    expect(conf).toContain('listen 127.0.0.1:8080;');
    expect(conf).toMatch(/location = \/health \{[^}]*proxy_pass http:\/\/127\.0\.0\.1:3000\/health;/);
    expect(conf).not.toContain('ssl_certificate');
  });

  it('validates the site inside a whole temporary config, never the live one', () => {
    const t = expand(nginx, webs[0]!).find((x) => x.module === 'template')!;
    const validate = (t.params as { validate: string }).validate;
    expect(validate).toContain('nginx -t -q -c "$d/nginx.conf"');
    expect(validate).toContain('cp %s "$d/sites/"www.foobar.com');
  });

  it('refuses bad vars before any connection', () => {
    const problems = problemsOf(nginx, webs[0]!, { ...site, http_port: 70000, nginx_served_by_header: 'X Bad', backend_tls: true, backend_tls_key: '/dev/null' });
    expect(problems.join('\n')).toMatch(/http_port/);
    expect(problems.join('\n')).toMatch(/nginx_served_by_header/);
    expect(problems.join('\n')).toMatch(/backend_tls_cert: needed with backend_tls_key/);
    expect(problemsOf(nginx, webs[0]!, site)).toEqual([]);
  });
});

describe('nginx role, TLS from the load balancers by default', () => {
  it('serves only TLS on the private address with a certificate from the internal CA for its name and address', () => {
    const tasks = expand(nginx, webs[1]!);
    const conf = rendered(tasks);
    expect(conf).toContain('listen 192.168.5.12:80 ssl default_server;');
    expect(conf).toContain('ssl_certificate /etc/nginx/tls/backend.pem;');
    expect(conf).toContain('ssl_certificate_key /etc/nginx/tls/backend.pem;');
    const leaf = tasks.find((t) => t.module === 'internal_tls')!;
    expect(leaf.params).toEqual({
      pki_dir: '/srv/provision/inventory/site.pki',
      ca_label: 'site',
      cert_file: '/etc/nginx/tls/backend.pem',
      names: ['web-02', '192.168.5.12'],
      renew_before_days: 30,
    });
    expect(leaf.notify).toEqual(['reload nginx']);
    expect(tasks.some((t) => t.module === 'copy')).toBe(false);
  });

  it('uses your own certificate and key when both are given', () => {
    const tasks = expand(nginx, webs[0]!, { backend_tls_cert: '/dev/null', backend_tls_key: '/dev/null' });
    expect(rendered(tasks)).toContain('ssl_certificate /etc/nginx/tls/backend.crt;');
    expect(tasks.some((t) => t.module === 'internal_tls')).toBe(false);
  });
});

describe('haproxy role', () => {
  it('balances to every web server with health checks, terminates TLS with the domain certificate', () => {
    const tasks = expand(haproxy, lb, { backend_tls: false });
    const cfg = rendered(tasks);
    expect(cfg).toContain('server web-01 10.9.0.11:80');
    expect(cfg).toContain('server web-02 192.168.5.12:80');
    expect(cfg).toContain('http-check send meth GET uri /health ver HTTP/1.1 hdr Host www.foobar.com');
    expect(cfg).toContain('bind *:443 ssl crt /etc/haproxy/certs/www.foobar.com.pem');
    expect(cfg).toContain('ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets');
    expect(cfg).toContain('http-response set-header Strict-Transport-Security "max-age=63072000"');
    expect(cfg).toContain('bind 10.9.0.10:8405');
    expect(cfg).not.toContain('verify required');
    const tpl = tasks.find((x) => x.module === 'template')!;
    expect((tpl.params as { validate: string }).validate).toBe('haproxy -c -q -f %s');
    // The placeholder is made only when no certificate is there: it never replaces the real one.
    const placeholder = tasks.find((x) => x.name.startsWith('placeholder'))!;
    expect((placeholder.params as { creates: string }).creates).toBe('/etc/haproxy/certs/www.foobar.com.pem');
  });

  it('re-encrypts to the web servers with backend_tls, verifying them', () => {
    const cfg = rendered(expand(haproxy, lb, { backend_tls: true, backend_tls_ca: '/dev/null' }));
    expect(cfg).toMatch(/default-server check .* ssl verify required ca-file \/etc\/haproxy\/backend-ca\.pem verifyhost www\.foobar\.com/);
  });

  it('re-encrypts by default, each web server verified for its own name against the internal CA', () => {
    const tasks = expand(haproxy, lb);
    const cfg = rendered(tasks);
    expect(cfg).toMatch(/default-server check inter 2s fall 3 rise 2 ssl verify required ca-file \/etc\/haproxy\/backend-ca\.pem\n/);
    expect(cfg).toContain('server web-01 10.9.0.11:80 verifyhost web-01\n');
    expect(cfg).toContain('server web-02 192.168.5.12:80 verifyhost web-02\n');
    const ca = tasks.find((t) => t.module === 'internal_tls')!;
    expect(ca.params).toEqual({ pki_dir: '/srv/provision/inventory/site.pki', ca_label: 'site', ca_file: '/etc/haproxy/backend-ca.pem' });
    expect(ca.notify).toEqual(['reload haproxy']);
  });

  it('refuses bad vars', () => {
    const problems = problemsOf(haproxy, lb, { ...site, haproxy_hsts: 'forever', https_port: 80, backend_tls: true }).join('\n');
    expect(problems).toMatch(/haproxy_hsts/);
    expect(problems).toMatch(/https_port: must differ/);
    expect(problemsOf(haproxy, lb, { ...site, backend_tls: true })).toEqual([]);
  });
});

describe('certificates role', () => {
  it('asks the CA only when no certificate from this directory (and key type) is there', () => {
    const tasks = expand(certificates, lb, { acme_directory_url: 'https://acme.test/dir' });
    const issue = tasks.find((t) => t.name.startsWith('certificate for'))!;
    const p = issue.params as { cmd: string; unless: string };
    expect(p.unless).toContain("grep -qxF 'server = https://acme.test/dir' /etc/letsencrypt/renewal/www.foobar.com.conf");
    expect(p.unless).toContain("'key_type = ecdsa'");
    expect(p.cmd).toContain('--http-01-address 127.0.0.1 --http-01-port 8888');
    expect(p.cmd).toContain('--deploy-hook /usr/local/sbin/provision-haproxy-cert');
    expect(p.cmd).not.toContain('REQUESTS_CA_BUNDLE'); // system trust unless acme_ca_bundle is set
  });

  it('keeps the placeholder in selfsigned mode', () => {
    expect(expand(certificates, lb, { certificate_mode: 'selfsigned' })).toEqual([]);
  });

  it('needs an email, a real domain and a bundle that exists', () => {
    const problems = problemsOf(certificates, lb, { acme_ca_bundle: '/nonexistent/ca.pem' }).join('\n');
    expect(problems).toMatch(/acme_email/);
    expect(problems).toMatch(/domain: still the placeholder/);
    expect(problems).toMatch(/acme_ca_bundle: \/nonexistent\/ca.pem does not exist/);
    expect(problemsOf(certificates, lb, site)).toEqual([]);
  });
});

describe('a load-balancer pair (lb_virtual_ip): one ACME certificate, served by both', () => {
  const lb2 = host('lb-02', '10.9.0.13', ['loadbalancers']);
  const pairGroups: Record<string, Host[]> = { loadbalancers: [lb, lb2], webservers: webs };
  const pair = { lb_virtual_ip: '203.0.113.100/24', acme_directory_url: 'https://acme.test/dir' };
  function expandPair(role: RoleDef, h: Host): Task[] {
    return role.tasks({
      host: h,
      facts: {} as Facts,
      vars: roleVarsFor<RoleContext['vars']>(role, h, { ...site, ...pair }),
      inventory: { name: 'site', file: '/srv/provision/inventory/site.yml' } as Inventory,
      hostsIn: (g) => pairGroups[g] ?? [],
      file: (rel) => path.resolve(import.meta.dirname, '../../../src/roles', role.name, rel),
    });
  }

  it('lb-01 asks the ACME CA, its certbot on its private address; both HAProxies send challenges there', () => {
    const issue = expandPair(certificates, lb).find((t) => t.name.startsWith('certificate for'))!;
    expect((issue.params as { cmd: string }).cmd).toContain('--http-01-address 10.9.0.10 --http-01-port 8888');
    for (const h of [lb, lb2]) expect(rendered(expandPair(haproxy, h))).toMatch(/backend acme\n\s+server certbot 10\.9\.0\.10:8888/);
  });

  it('lb-02 asks nothing: it copies lb-01\'s certificate and key through the control machine and reloads HAProxy', () => {
    const tasks = expandPair(certificates, lb2);
    const copied = tasks.filter((t) => t.name.startsWith('certificate for'));
    expect(copied.map((t) => t.module)).toEqual(['peer_file']);
    expect(copied[0]!.params).toEqual({
      from_host: 'lb-01',
      sources: ['/etc/letsencrypt/live/www.foobar.com/fullchain.pem', '/etc/letsencrypt/live/www.foobar.com/privkey.pem'],
      dest: '/etc/haproxy/certs/www.foobar.com.pem',
      mode: '0600',
      wait_seconds: 600,
    });
    expect(copied[0]!.notify).toEqual(['reload haproxy (certificate from the pair)']);
    expect(tasks.some((t) => t.name.startsWith('certificate for') && t.module === 'command')).toBe(false); // no ACME order
  });

  it('lb-02 lets lb-01\'s push key run accept-certificate only, from lb-01\'s private address only, as a user of its own', () => {
    const tasks = expandPair(certificates, lb2);
    const key = tasks.find((t) => t.name.startsWith('certificate push key from lb-01'))!;
    expect(key.module).toBe('peer_file');
    expect(key.params).toMatchObject({
      from_host: 'lb-01',
      sources: ['/etc/provision/certificate-push/id_ed25519.pub'],
      dest: '/var/lib/provision-cert/.ssh/authorized_keys',
      prefix: 'restrict,from="10.9.0.10",command="/usr/local/lib/provision/accept-certificate" ',
      mode: '0644',
    });
    const sudoers = tasks.find((t) => t.name.startsWith('sudoers'))!.params as { content: string; validate: string; mode: string };
    expect(sudoers.content).toContain('provision-cert ALL=(root) NOPASSWD: /usr/local/lib/provision/accept-certificate ""\n');
    expect(sudoers.validate).toBe('visudo -cqf %s');
    expect(sudoers.mode).toBe('0440');
    const script = rendered(tasks.filter((t) => t.name.startsWith('accept-certificate')));
    expect(script).toContain("dest='/etc/haproxy/certs/www.foobar.com.pem'");
    expect(script).toContain("domain='www.foobar.com'");
    expect(script).toContain('exec sudo -n /usr/local/lib/provision/accept-certificate');
    // The user's home and keys are root's: a login as it cannot change its own authorized_keys.
    for (const name of ["provision-cert's home", "provision-cert's .ssh"]) expect(tasks.find((t) => t.name === name)!.params).toMatchObject({ owner: 'root', mode: '0755' });
  });

  it('lb-01 makes the push key, pins lb-02\'s host key, and its deploy hook pushes to lb-02 with that key and that pin only', () => {
    const tasks = expandPair(certificates, lb);
    const keygen = tasks.find((t) => t.name.startsWith('certificate push key'))!.params as { cmd: string; creates: string };
    expect(keygen.creates).toBe('/etc/provision/certificate-push/id_ed25519');
    expect(keygen.cmd).toContain("ssh-keygen -q -t ed25519 -N ''");
    const pin = tasks.find((t) => t.name.startsWith("lb-02's SSH host key pinned"))!;
    expect(pin.params).toMatchObject({ from_host: 'lb-02', sources: ['/etc/ssh/ssh_host_ed25519_key.pub'], dest: '/etc/provision/certificate-push/known_hosts.lb-02', prefix: '10.9.0.13 ' });
    const names = tasks.map((t) => t.name);
    expect(names.indexOf(pin.name)).toBeLessThan(names.findIndex((n) => n.startsWith('certificate for www.foobar.com from')));
    const hook = rendered(tasks);
    expect(hook).toContain('push 10.9.0.13 /etc/provision/certificate-push/known_hosts.lb-02');
    expect(hook).toContain('-i /etc/provision/certificate-push/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes');
    expect(hook).toContain('-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$2" -o GlobalKnownHostsFile=/dev/null');
    expect(hook).toContain('-p 22 provision-cert@"$1" < "$dest"');
    // One load balancer: nothing to push to.
    expect(rendered(expand(certificates, lb, { acme_directory_url: 'https://acme.test/dir' }))).not.toContain('ssh ');
  });

  it('one load balancer: certbot on loopback as before', () => {
    const issue = expand(certificates, lb, { ...pair }).find((t) => t.name.startsWith('certificate for'))!;
    expect((issue.params as { cmd: string }).cmd).toContain('--http-01-address 127.0.0.1 --http-01-port 8888');
  });
});

describe('the public certificate watched (certificates role)', () => {
  it('a converge renews, and drift reports, a certificate ending within 14 days or a failed renewal', () => {
    const t = expand(certificates, lb, { acme_directory_url: 'https://acme.test/dir' }).find((x) => x.name.startsWith('certificate for www.foobar.com ends in more than'))!;
    const p = t.params as { cmd: string; unless: string };
    expect(t.name).toBe('certificate for www.foobar.com ends in more than 14 days and its renewal is not failing');
    expect(p.unless).toBe(
      "[ ! -e /etc/haproxy/certs/www.foobar.com.pem ] || { openssl x509 -checkend 1209600 -noout -in /etc/haproxy/certs/www.foobar.com.pem >/dev/null && ! systemctl is-failed --quiet certbot.service; }",
    );
    expect(p.cmd).toContain('certbot renew --no-random-sleep-on-renew -q');
    expect(p.cmd).toContain('systemctl reset-failed certbot.service');
  });

  it('its guard, run by the real openssl (a renewal service that has not failed): 10 days left fails it, 30 days pass it, no certificate yet passes it', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-watch-'));
    try {
      // `systemctl is-failed --quiet` exits 1 for a unit that has not failed.
      mkdirSync(path.join(dir, 'bin'));
      writeFileSync(path.join(dir, 'bin', 'systemctl'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      const guard = (days: number | undefined) => {
        const pem = path.join(dir, `${days ?? 'none'}.pem`);
        if (days !== undefined) {
          execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days), '-subj', '/CN=www.foobar.com', '-keyout', path.join(dir, 'k.pem'), '-out', pem], { stdio: 'ignore' });
        }
        const unless = (watchTask('www.foobar.com', pem, 14).params as { unless: string }).unless;
        try {
          execFileSync('sh', ['-c', unless], { stdio: 'ignore', env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` } });
          return 0;
        } catch (err) {
          return (err as { status: number }).status;
        }
      };
      expect(guard(10)).toBe(1);
      expect(guard(30)).toBe(0);
      // The task before obtains it: a plan made before the first run predicts no renewal (the run makes none).
      expect(guard(undefined)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
