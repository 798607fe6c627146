import { sh } from '../../util/quote.js';
import type { RoleContext, RoleDef } from '../types.js';
import { GROUPS, num, privateAddress, SHARED_DEFAULTS, str } from '../shared.js';
import { checkBoolean, checkHostname, checkOneOf, checkPort } from '../checks.js';
import { apt, command, copy, file, service, template } from '../../modules/tasks.js';

const RELOAD = 'reload haproxy';

/** Where HAProxy reads the site's certificate (fullchain + key): the certificates role writes it here. */
export const HAPROXY_CERT_DIR = '/etc/haproxy/certs';
export const haproxyCertPath = (domain: string) => `${HAPROXY_CERT_DIR}/${domain}.pem`;
/** The CA that signed the web servers' certificates, when the load balancer re-encrypts to them. */
export const BACKEND_CA_PATH = '/etc/haproxy/backend-ca.pem';
/** certbot's standalone server for http-01 challenges, behind HAProxy's port 80. */
export const ACME_CHALLENGE_ADDRESS = '127.0.0.1';
export const ACME_CHALLENGE_PORT = 8888;

/**
 * A self-signed certificate for the domain, made once: HAProxy refuses a TLS bind without one, and
 * it must already run (forwarding http-01 challenges) before the first real certificate can exist.
 * The certificates role replaces it; `creates` makes sure it never overwrites a real one.
 */
function placeholderCommand(domain: string, days: number): string {
  const pem = haproxyCertPath(domain);
  return [
    'set -e',
    'd=$(mktemp -d)',
    `trap 'rm -rf "$d"' EXIT`,
    sh`openssl req -x509 -newkey rsa:2048 -nodes -days ${days} -subj ${`/CN=${domain}`} -addext ${`subjectAltName=DNS:${domain}`} -keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null`,
    `umask 077`,
    'cat "$d/cert.pem" "$d/key.pem" > "$d/site.pem"',
    sh`install -m 0600 -o root -g root "$d/site.pem" ${pem}`,
  ].join('\n');
}

export const role: RoleDef = {
  name: 'haproxy',
  description:
    'HAProxy on the load balancers: HTTP redirected to HTTPS (except ACME http-01 challenges, sent to certbot), ' +
    'TLS 1.2+ termination with HSTS, round-robin to every web server with /health checks, an admin socket and the ' +
    'Prometheus exporter on the private address; validated with haproxy -c before it goes live, reloaded by a handler.',
  defaults: {
    domain: SHARED_DEFAULTS.domain,
    http_port: SHARED_DEFAULTS.http_port,
    https_port: SHARED_DEFAULTS.https_port,
    haproxy_exporter_port: SHARED_DEFAULTS.haproxy_exporter_port,
    private_address: SHARED_DEFAULTS.private_address,
    /** The group whose hosts are the backends, each at its private address and http_port. */
    haproxy_backend_group: GROUPS.webservers,
    haproxy_balance: 'roundrobin',
    haproxy_health_path: '/health',
    /** Seconds between health checks; a server is out after 3 failures and back after 2 successes. */
    haproxy_check_interval: 2,
    haproxy_maxconn: 4096,
    /** Strict-Transport-Security on every HTTPS response (two years; "" for none). */
    haproxy_hsts: 'max-age=63072000',
    /** Mozilla's "intermediate" TLS 1.2 ciphers (TLS 1.3 suites are OpenSSL's defaults, all strong). */
    haproxy_ssl_ciphers:
      'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
      'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305',
    /** Days the placeholder self-signed certificate is valid (it is the site's certificate with certificate_mode: selfsigned). */
    haproxy_placeholder_days: 825,
    /** Re-encrypt to the web servers (they serve TLS on http_port, see the nginx role); needs backend_tls_ca. */
    backend_tls: false,
    /** With backend_tls: the CA certificate (a file on the control machine) the web servers' certificates chain to. */
    backend_tls_ca: '',
  },

  validate(vars) {
    const problems = [
      ...checkHostname(vars, 'domain'),
      ...checkPort(vars, 'http_port'),
      ...checkPort(vars, 'https_port'),
      ...checkPort(vars, 'haproxy_exporter_port'),
      ...checkOneOf(vars, 'haproxy_balance', ['roundrobin', 'leastconn', 'source', 'first']),
      ...checkBoolean(vars, 'backend_tls'),
    ];
    if (typeof vars.haproxy_health_path !== 'string' || !/^\/[A-Za-z0-9._~\/-]*$/.test(vars.haproxy_health_path)) {
      problems.push('haproxy_health_path: an absolute URL path like /health');
    }
    for (const n of ['haproxy_check_interval', 'haproxy_maxconn', 'haproxy_placeholder_days']) {
      const x = vars[n];
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) problems.push(`${n}: a whole number ≥ 1`);
    }
    if (typeof vars.haproxy_hsts !== 'string' || (vars.haproxy_hsts !== '' && !/^max-age=\d+(;\s*includeSubDomains)?(;\s*preload)?$/.test(vars.haproxy_hsts))) {
      problems.push('haproxy_hsts: "max-age=SECONDS" (optionally "; includeSubDomains", "; preload") or "" for none');
    }
    if (typeof vars.haproxy_ssl_ciphers !== 'string' || !/^[A-Za-z0-9_:+-]+$/.test(vars.haproxy_ssl_ciphers)) {
      problems.push('haproxy_ssl_ciphers: an OpenSSL cipher list (names separated by ":")');
    }
    if (vars.http_port === vars.https_port) problems.push('https_port: must differ from http_port');
    if (vars.backend_tls === true && (typeof vars.backend_tls_ca !== 'string' || vars.backend_tls_ca === '')) {
      problems.push('backend_tls_ca: needed with backend_tls: the CA file (on the control machine) the web servers\' certificates chain to');
    }
    return problems;
  },

  tasks(ctx: RoleContext) {
    const v = ctx.vars;
    const domain = str(v, 'domain');
    const group = str(v, 'haproxy_backend_group');
    const backends = ctx.hostsIn(group).map((h) => ({ name: h.name, address: privateAddress(h) }));
    if (backends.length === 0) throw new Error(`haproxy: group "${group}" (haproxy_backend_group) has no hosts to balance to`);
    const backendTls = v.backend_tls === true;
    return [
      apt('install haproxy', { packages: ['haproxy', 'openssl'] }),
      file('certificate folder', { path: HAPROXY_CERT_DIR, state: 'directory', mode: '0700', owner: 'root', group: 'root' }),
      command('placeholder certificate until the real one is issued', {
        cmd: placeholderCommand(domain, num(v, 'haproxy_placeholder_days')),
        creates: haproxyCertPath(domain),
      }),
      ...(backendTls
        ? [copy('backend CA certificate (from the control machine)', { src: str(v, 'backend_tls_ca'), dest: BACKEND_CA_PATH, mode: '0644' }, { notify: RELOAD })]
        : [file('no backend CA without backend_tls', { path: BACKEND_CA_PATH, state: 'absent' }, { notify: RELOAD })]),
      template(
        'haproxy.cfg',
        {
          src: ctx.file('templates/haproxy.cfg.njk'),
          dest: '/etc/haproxy/haproxy.cfg',
          mode: '0644',
          vars: {
            ...v,
            backends,
            backend_tls: backendTls,
            backend_ca: BACKEND_CA_PATH,
            cert_path: haproxyCertPath(domain),
            private_ip: privateAddress(ctx.host),
            acme_address: ACME_CHALLENGE_ADDRESS,
            acme_port: ACME_CHALLENGE_PORT,
          },
          validate: 'haproxy -c -q -f %s',
        },
        { notify: RELOAD },
      ),
      service('haproxy running and enabled', { name: 'haproxy', state: 'started', enabled: true }),
    ];
  },

  handlers() {
    return [service(RELOAD, { name: 'haproxy', state: 'reloaded' })];
  },
};

