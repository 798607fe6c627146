import { sh } from '../../util/quote.js';
import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import { acmeIssuer, GROUPS, privateAddress } from '../shared.js';
import { oneOf, pick, shared, text, wholeNumber } from '../vars.js';
import { pkiDirFor } from '../../pki/index.js';
import { apt, command, copy, file, internalTls, service, template } from '../../modules/tasks.js';

const RELOAD = 'reload haproxy';

/** Where HAProxy reads the site's certificate (fullchain + key): the certificates role writes it here. */
/** HAProxy's configuration file (Debian's package reads it; the accept-certificate push checks a copy of it). */
export const HAPROXY_CONFIG = '/etc/haproxy/haproxy.cfg';
export const HAPROXY_CERT_DIR = '/etc/haproxy/certs';
export const haproxyCertPath = (domain: string) => `${HAPROXY_CERT_DIR}/${domain}.pem`;
/** The CA that signed the web servers' certificates, when the load balancer re-encrypts to them. */
export const BACKEND_CA_PATH = '/etc/haproxy/backend-ca.pem';
/** certbot's standalone server for http-01 challenges, behind HAProxy's port 80. */
export const ACME_CHALLENGE_ADDRESS = '127.0.0.1';
export const ACME_CHALLENGE_PORT = 8888;
/** The runtime API (level admin) as haproxy.cfg.njk declares it: a deploy drains and readies web servers through it (src/deploy). */
export const HAPROXY_ADMIN_SOCKET = '/run/haproxy/admin.sock';
/** The backend of the web servers in haproxy.cfg.njk; each server in it is named after its inventory host. */
export const HAPROXY_WEB_BACKEND = 'web';

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

/** Where certbot's standalone server answers http-01 challenges: loopback, or the pair's issuer's private address. */
export function acmeChallengeAddress(ctx: Parameters<typeof acmeIssuer>[0], virtualIp: string): string {
  const issuer = acmeIssuer(ctx, virtualIp);
  return issuer ? privateAddress(issuer) : ACME_CHALLENGE_ADDRESS;
}

const wholeNumber1 = () => wholeNumber(1, undefined, 'a whole number ≥ 1');

const vars = withRules(
  z.object({
    domain: shared('domain', "The site's name: the certificate file, the health check's `Host`."),
    ...pick('http_port', 'https_port', 'haproxy_exporter_port', 'lb_virtual_ip'),
    private_address: shared('private_address', 'Where the exporter listens.'),
    backend_tls: shared('backend_tls', 'Re-encrypt to the web servers and verify them (the default; set the same for the nginx role): against the internal CA, or `backend_tls_ca`.'),
    haproxy_backend_group: z.string().default(GROUPS.webservers).describe('The group whose hosts are the backends, each at its private address and `http_port` (a run fails if it is empty).'),
    haproxy_balance: oneOf(['roundrobin', 'leastconn', 'source', 'first']).default('roundrobin').describe('Balancing algorithm.'),
    haproxy_health_path: text(/^\/[A-Za-z0-9._~\/-]*$/, 'an absolute URL path like /health', 'URL path').default('/health').describe('Path of the health check.'),
    haproxy_check_interval: wholeNumber1().default(2).describe('Seconds between health checks; a server is out after 3 failures and back after 2 successes.'),
    haproxy_maxconn: wholeNumber1().default(4096).describe('Global connection limit.'),
    haproxy_hsts: text(
      (s) => s === '' || /^max-age=\d+(;\s*includeSubDomains)?(;\s*preload)?$/.test(s),
      '"max-age=SECONDS" (optionally "; includeSubDomains", "; preload") or "" for none',
      'HSTS value',
    )
      .default('max-age=63072000')
      .describe('Strict-Transport-Security on every HTTPS response (two years); `"…; includeSubDomains"`, `"…; preload"` allowed; `""` for none.'),
    haproxy_ssl_ciphers: text(/^[A-Za-z0-9_:+-]+$/, 'an OpenSSL cipher list (names separated by ":")', 'OpenSSL cipher list')
      .default(
        'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
          'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305',
      )
      .describe('TLS 1.2 ciphers: Mozilla\'s "intermediate" ECDHE + AEAD list (TLS 1.3 suites are OpenSSL\'s defaults, all strong).'),
    haproxy_placeholder_days: wholeNumber1()
      .default(825)
      .describe('Days the placeholder self-signed certificate is valid (it is the site\'s certificate with `certificate_mode: selfsigned`).'),
    backend_tls_ca: z
      .string()
      .default('')
      .describe("With `backend_tls` and your own certificates on the web servers (`backend_tls_cert`): the CA certificate (a file on the control machine) they chain to, verified for `domain`. `\"\"` (default): the inventory's internal CA, each server verified for its inventory name."),
  }),
  [
    { says: '`https_port` differs from `http_port`.', check: (v) => problemIf(v.http_port === v.https_port, 'https_port', 'must differ from http_port') },
  ],
);

export const role = defineRole({
  name: 'haproxy',
  description:
    'HAProxy 2.6 (Debian 12; Ubuntu 24.04 ships 2.8, same config) on the load balancers (play "Load balancer with TLS", group ' +
    '`loadbalancers`): HTTP redirected to HTTPS (except ACME http-01 challenges, sent to certbot), TLS 1.2+ ' +
    'termination with HSTS, round-robin to every web server with `/health` checks, an admin socket and the Prometheus exporter ' +
    'on the private address; validated with `haproxy -c` before it goes live, reloaded by a handler. It runs **before** the ' +
    '`certificates` role on the same host: it must already forward ACME challenges when the first certificate is asked for.',
  vars,

  tasks(ctx) {
    const v = ctx.vars;
    const domain = v.domain;
    const group = v.haproxy_backend_group;
    const backends = ctx.hostsIn(group).map((h) => ({ name: h.name, address: privateAddress(h) }));
    if (backends.length === 0) throw new Error(`haproxy: group "${group}" (haproxy_backend_group) has no hosts to balance to`);
    const backendTls = v.backend_tls;
    return [
      apt('install haproxy', { packages: ['haproxy', 'openssl'] }),
      file('certificate folder', { path: HAPROXY_CERT_DIR, state: 'directory', mode: '0700', owner: 'root', group: 'root' }),
      command('placeholder certificate until the real one is issued', {
        cmd: placeholderCommand(domain, v.haproxy_placeholder_days),
        creates: haproxyCertPath(domain),
      }),
      ...(!backendTls
        ? [file('no backend CA without backend_tls', { path: BACKEND_CA_PATH, state: 'absent' }, { notify: RELOAD })]
        : v.backend_tls_ca
          ? [copy('backend CA certificate (from the control machine)', { src: v.backend_tls_ca, dest: BACKEND_CA_PATH, mode: '0644' }, { notify: RELOAD })]
          : [internalTls('backend CA: the internal CA the web servers\' certificates come from', { pki_dir: pkiDirFor(ctx.inventory), ca_label: ctx.inventory.name, ca_file: BACKEND_CA_PATH }, { notify: RELOAD })]),
      template(
        'haproxy.cfg',
        {
          src: ctx.file('templates/haproxy.cfg.njk'),
          dest: HAPROXY_CONFIG,
          mode: '0644',
          vars: {
            ...v,
            backends,
            backend_tls: backendTls,
            backend_ca: BACKEND_CA_PATH,
            // Your own certificates name the domain; the internal CA's name each host.
            backend_verify_domain: backendTls && v.backend_tls_ca !== '',
            cert_path: haproxyCertPath(domain),
            private_ip: privateAddress(ctx.host),
            // A pair: http-01 challenges reach whichever holds the address; both send them to the one
            // load balancer that asks for the certificate (its certbot listens on its private address).
            acme_address: acmeChallengeAddress(ctx, v.lb_virtual_ip),
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
});

