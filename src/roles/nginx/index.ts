import { existsSync } from 'node:fs';
import { quote } from '../../util/quote.js';
import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import { GROUPS, groupAddresses, privateAddress } from '../shared.js';
import type { RoleContext, VarIssue } from '../types.js';
import type { Task } from '../../modules/index.js';
import { shared, text, wholeNumber } from '../vars.js';
import type { Host } from '../../inventory/index.js';
import { pkiDirFor } from '../../pki/index.js';
import { apt, command, copy, file, internalTls, service, template } from '../../modules/tasks.js';

const RELOAD = 'reload nginx';
const SITES_AVAILABLE = '/etc/nginx/sites-available';
const SITES_ENABLED = '/etc/nginx/sites-enabled';
const TLS_DIR = '/etc/nginx/tls';

/**
 * `nginx -t` only reads a whole configuration, and a file in sites-available is live only through
 * its link in sites-enabled. So validate a temporary main config: the live nginx.conf with its
 * sites-enabled include pointed at a temporary folder holding the other enabled sites and the
 * candidate in place of this site. A nginx.conf without that include is refused, not waved through.
 */
export function siteValidateCommand(site: string): string {
  const include = `include ${SITES_ENABLED}/*;`;
  const live = `${SITES_AVAILABLE}/${site}`;
  return [
    'd=$(mktemp -d)',
    `trap 'rm -rf "$d"' EXIT`,
    `grep -qF ${quote(include)} /etc/nginx/nginx.conf || { echo ${quote(`nginx.conf has no "${include}"`)}; exit 1; }`,
    'mkdir "$d/sites"',
    `for f in ${SITES_ENABLED}/*; do [ -e "$f" ] || continue; t=$(readlink -f "$f"); [ "$t" = ${quote(live)} ] || ln -s "$t" "$d/sites/"; done`,
    `cp %s "$d/sites/"${quote(site)}`,
    `sed "s|${include.replace(/[*]/g, '\\*')}|include $d/sites/*;|" /etc/nginx/nginx.conf > "$d/nginx.conf"`,
    'nginx -t -q -c "$d/nginx.conf"',
  ].join('; ');
}

/**
 * Reload, then prove it took: nginx reports a reload as done before its master has bound the new
 * sockets, and when the new address is held by a wildcard listener of the old config (Debian's
 * default site on *:80, replaced by this site on the private address) the master logs "bind()
 * failed" and keeps the old config while systemd says "reloaded". Then only a restart helps.
 */
export function reloadCommand(sockets: string[]): string {
  const listening = sockets.map((s) => `ss -Hltn src ${quote(s)} | grep -q .`).join(' && ');
  const wait = `for i in $(seq 1 10); do if ${listening}; then exit 0; fi; sleep 0.5; done`;
  return [
    'if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl start nginx; fi',
    `( ${wait}; exit 1 ) && exit 0`,
    `echo ${quote(`nginx did not bind ${sockets.join(', ')} on reload (held by the old config): restarting`)} >&2`,
    'systemctl restart nginx',
    wait,
    `echo ${quote(`nginx is not listening on ${sockets.join(', ')}`)} >&2; exit 1`,
  ].join('\n');
}

/** backend_tls_cert / backend_tls_key, when given: a file on the control machine, and both or neither. */
function tlsFileProblems(v: Record<string, unknown>, name: 'backend_tls_cert' | 'backend_tls_key'): VarIssue[] {
  if (v.backend_tls !== true) return [];
  const other = name === 'backend_tls_cert' ? 'backend_tls_key' : 'backend_tls_cert';
  const f = v[name];
  const given = typeof f === 'string' && f !== '';
  const otherGiven = typeof v[other] === 'string' && v[other] !== '';
  if (!given) return problemIf(otherGiven, name, `needed with ${other} (or leave both empty: the internal CA issues this host's certificate)`);
  return problemIf(!existsSync(f), name, `${f} does not exist on the control machine`);
}

/**
 * The names of a web server's certificate from the internal CA: its inventory name (what HAProxy
 * verifies, `verifyhost`) and its private address (what it connects to).
 */
export function backendCertNames(host: Host): string[] {
  return [host.name, privateAddress(host)];
}

/** Where the internal CA's certificate for this host lives on it: certificate then key, one 0600 file. */
export const INTERNAL_CERT_FILE = `${TLS_DIR}/backend.pem`;
/** Where your own certificate (`backend_tls_cert`) goes on the web server (its key beside it). */
export const OWN_CERT_FILE = `${TLS_DIR}/backend.crt`;

const vars = withRules(
  z.object({
    domain: shared('domain', "The site's name (`server_name`, site file name)."),
    http_port: shared('http_port', 'Port on the private address the load balancers use.'),
    app_port: shared('app_port', 'The application, on `127.0.0.1`.'),
    nginx_status_port: shared('nginx_status_port', '`stub_status` on `127.0.0.1`, read by the Nginx exporter.'),
    private_address: shared('private_address', 'Address Nginx listens on.'),
    backend_tls: shared('backend_tls', 'Serve TLS on `http_port` to the load balancers (they re-encrypt; set the same var for the haproxy role).'),
    nginx_served_by_header: text(/^([A-Za-z0-9-]+)?$/, 'a header name (letters, digits, dashes) or "" for none', 'header name')
      .default('X-Served-By')
      .describe('Response header naming the web server that answered (its inventory name); `""` for none (it tells clients host names).'),
    nginx_client_max_body_size: text(/^\d+[kKmMgG]?$/, 'a size like "10m"', 'size').default('10m').describe('Largest request body.'),
    nginx_proxy_read_timeout: wholeNumber(1, undefined, 'a whole number of seconds ≥ 1').default(60).describe('Seconds nginx waits on the app for a response (proxy_read_timeout).'),
    nginx_trusted_proxy_group: z.string().default(GROUPS.loadbalancers).describe('Which group\'s private addresses may set the client address (X-Forwarded-For).'),
    backend_tls_cert: z
      .string()
      .default('')
      .describe('With `backend_tls`: your own certificate (chain) for this host, a file on the control machine; it must name `domain`. `""` (default): the internal CA issues one for the host\'s name and private address.'),
    backend_tls_key: z.string().default('').describe('With `backend_tls_cert`: its key, a file on the control machine.'),
    backend_tls_renew_days: wholeNumber(1, 365, 'a whole number of days from 1 to 365')
      .default(30)
      .describe('With the internal CA: a converge re-issues the host\'s certificate when it ends within this many days.'),
  }),
  [
    { says: '`nginx_status_port` differs from `http_port`.', check: (v) => problemIf(v.http_port === v.nginx_status_port, 'nginx_status_port', 'must differ from http_port') },
    {
      says: '`app_port` differs from `http_port` and `nginx_status_port`.',
      check: (v) => problemIf(v.app_port === v.http_port || v.app_port === v.nginx_status_port, 'app_port', 'must differ from http_port and nginx_status_port'),
    },
    {
      says: '`backend_tls_cert` and `backend_tls_key` are both set or both empty (internal CA), and name files that exist on the control machine.',
      check: (v) => [...tlsFileProblems(v, 'backend_tls_cert'), ...tlsFileProblems(v, 'backend_tls_key')],
    },
  ],
);

type NginxVars = z.output<typeof vars>;
const ownFiles = (v: NginxVars) => v.backend_tls_cert !== '';

/** The certificate and key nginx reads: your own files, or the internal CA's combined file. */
function tlsFiles(v: NginxVars): { tls_cert: string; tls_key: string } {
  return ownFiles(v) ? { tls_cert: OWN_CERT_FILE, tls_key: `${TLS_DIR}/backend.key` } : { tls_cert: INTERNAL_CERT_FILE, tls_key: INTERNAL_CERT_FILE };
}

function tlsTasks(ctx: RoleContext<NginxVars>): Task[] {
  const v = ctx.vars;
  const folder = file('backend TLS folder', { path: TLS_DIR, state: 'directory', mode: '0750', owner: 'root', group: 'root' });
  if (ownFiles(v)) {
    return [
      folder,
      copy('backend TLS certificate', { src: v.backend_tls_cert, dest: `${TLS_DIR}/backend.crt`, mode: '0644' }, { notify: RELOAD }),
      copy('backend TLS key', { src: v.backend_tls_key, dest: `${TLS_DIR}/backend.key`, mode: '0600', sensitive: true }, { notify: RELOAD }),
    ];
  }
  return [
    folder,
    internalTls(
      'backend TLS certificate from the internal CA',
      { pki_dir: pkiDirFor(ctx.inventory), ca_label: ctx.inventory.name, cert_file: INTERNAL_CERT_FILE, names: backendCertNames(ctx.host), renew_before_days: v.backend_tls_renew_days },
      { notify: RELOAD },
    ),
  ];
}

export const role = defineRole({
  name: 'nginx',
  description:
    'Nginx on the web servers (play "Web servers and the application", group `webservers`): one site for `domain` that the load balancers reach on the host\'s **private address** and that ' +
    'proxies to the application on loopback (`/health` included, so the load balancer checks the app), real client addresses ' +
    'trusted only from the load balancers, no version banner, the default site removed, stub_status on loopback for the ' +
    'exporter; validated before it goes live, reloaded by a handler.',
  vars,

  tasks(ctx) {
    const v = ctx.vars;
    const site = v.domain;
    const backendTls = v.backend_tls;
    const trusted = groupAddresses(ctx, v.nginx_trusted_proxy_group);
    return [
      apt('install nginx', { packages: ['nginx'] }),
      // Debian's default site listens on every address and answers for any name: never part of the site.
      file('remove the default site', { path: `${SITES_ENABLED}/default`, state: 'absent', created_by_package: 'nginx' }, { notify: RELOAD }),
      ...(backendTls ? tlsTasks(ctx) : []),
      template(
        `site ${site}`,
        {
          src: ctx.file('templates/site.conf.njk'),
          dest: `${SITES_AVAILABLE}/${site}`,
          mode: '0644',
          vars: {
            ...v,
            listen_address: privateAddress(ctx.host),
            trusted_proxies: trusted,
            http_port: v.http_port,
            app_port: v.app_port,
            backend_tls: backendTls,
            ...tlsFiles(v),
          },
          validate: siteValidateCommand(site),
        },
        { notify: RELOAD },
      ),
      file(`enable site ${site}`, { path: `${SITES_ENABLED}/${site}`, state: 'link', src: `${SITES_AVAILABLE}/${site}` }, { notify: RELOAD }),
      service('nginx running and enabled', { name: 'nginx', state: 'started', enabled: true }),
    ];
  },

  handlers(ctx) {
    const sockets = [`${privateAddress(ctx.host)}:${ctx.vars.http_port}`, `127.0.0.1:${ctx.vars.nginx_status_port}`];
    return [command(RELOAD, { cmd: reloadCommand(sockets) })];
  },
});
