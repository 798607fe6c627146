import { existsSync } from 'node:fs';
import { quote } from '../../util/quote.js';
import type { RoleContext, RoleDef } from '../types.js';
import { GROUPS, groupAddresses, num, privateAddress, SHARED_DEFAULTS, str } from '../shared.js';
import { checkBoolean, checkHostname, checkPort } from '../checks.js';
import { apt, command, copy, file, service, template } from '../../modules/tasks.js';

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

export const role: RoleDef = {
  name: 'nginx',
  description:
    'Nginx on the web servers: one site on the private address proxying to the app on loopback (/health included, ' +
    'so the load balancer checks the app), real client addresses trusted only from the load balancers, no version ' +
    'banner, the default site removed, stub_status on loopback for the exporter; validated before it goes live, reloaded by a handler.',
  defaults: {
    domain: SHARED_DEFAULTS.domain,
    http_port: SHARED_DEFAULTS.http_port,
    app_port: SHARED_DEFAULTS.app_port,
    nginx_status_port: SHARED_DEFAULTS.nginx_status_port,
    private_address: SHARED_DEFAULTS.private_address,
    /** Response header naming the web server that answered (empty: none; it tells the world host names). */
    nginx_served_by_header: 'X-Served-By',
    nginx_client_max_body_size: '10m',
    /** Seconds nginx waits on the app for a response (proxy_read_timeout). */
    nginx_proxy_read_timeout: 60,
    /** Which group's private addresses may set the client address (X-Forwarded-For). */
    nginx_trusted_proxy_group: GROUPS.loadbalancers,
    /** Serve TLS on http_port to the load balancers, which then re-encrypt (haproxy role, same var). */
    backend_tls: false,
    /** With backend_tls: this host's certificate (chain) and key, files on the control machine; the certificate must name `domain`. */
    backend_tls_cert: '',
    backend_tls_key: '',
  },

  validate(vars) {
    const problems = [
      ...checkPort(vars, 'http_port'),
      ...checkPort(vars, 'app_port'),
      ...checkPort(vars, 'nginx_status_port'),
      ...checkHostname(vars, 'domain'),
    ];
    if (typeof vars.nginx_served_by_header !== 'string' || !/^([A-Za-z0-9-]+)?$/.test(vars.nginx_served_by_header)) {
      problems.push('nginx_served_by_header: a header name (letters, digits, dashes) or "" for none');
    }
    if (typeof vars.nginx_client_max_body_size !== 'string' || !/^\d+[kKmMgG]?$/.test(vars.nginx_client_max_body_size)) {
      problems.push('nginx_client_max_body_size: a size like "10m"');
    }
    if (typeof vars.nginx_proxy_read_timeout !== 'number' || !Number.isInteger(vars.nginx_proxy_read_timeout) || vars.nginx_proxy_read_timeout < 1) {
      problems.push('nginx_proxy_read_timeout: a whole number of seconds ≥ 1');
    }
    if (vars.http_port === vars.nginx_status_port) problems.push('nginx_status_port: must differ from http_port');
    if (vars.app_port === vars.http_port || vars.app_port === vars.nginx_status_port) problems.push('app_port: must differ from http_port and nginx_status_port');
    problems.push(...checkBoolean(vars, 'backend_tls'));
    if (vars.backend_tls === true) {
      for (const n of ['backend_tls_cert', 'backend_tls_key']) {
        const f = vars[n];
        if (typeof f !== 'string' || f === '') problems.push(`${n}: needed with backend_tls (a file on the control machine)`);
        else if (!existsSync(f)) problems.push(`${n}: ${f} does not exist on the control machine`);
      }
    }
    return problems;
  },

  tasks(ctx: RoleContext) {
    const v = ctx.vars;
    const site = str(v, 'domain');
    const backendTls = v.backend_tls === true;
    const trusted = groupAddresses(ctx, str(v, 'nginx_trusted_proxy_group'));
    return [
      apt('install nginx', { packages: ['nginx'] }),
      // Debian's default site listens on every address and answers for any name: never part of the site.
      file('remove the default site', { path: `${SITES_ENABLED}/default`, state: 'absent', created_by_package: 'nginx' }, { notify: RELOAD }),
      ...(backendTls
        ? [
            file('backend TLS folder', { path: TLS_DIR, state: 'directory', mode: '0750', owner: 'root', group: 'root' }),
            copy('backend TLS certificate', { src: str(v, 'backend_tls_cert'), dest: `${TLS_DIR}/backend.crt`, mode: '0644' }, { notify: RELOAD }),
            copy('backend TLS key', { src: str(v, 'backend_tls_key'), dest: `${TLS_DIR}/backend.key`, mode: '0600', sensitive: true }, { notify: RELOAD }),
          ]
        : []),
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
            http_port: num(v, 'http_port'),
            app_port: num(v, 'app_port'),
            backend_tls: backendTls,
            tls_dir: TLS_DIR,
          },
          validate: siteValidateCommand(site),
        },
        { notify: RELOAD },
      ),
      file(`enable site ${site}`, { path: `${SITES_ENABLED}/${site}`, state: 'link', src: `${SITES_AVAILABLE}/${site}` }, { notify: RELOAD }),
      service('nginx running and enabled', { name: 'nginx', state: 'started', enabled: true }),
    ];
  },

  handlers(ctx: RoleContext) {
    const sockets = [`${privateAddress(ctx.host)}:${num(ctx.vars, 'http_port')}`, `127.0.0.1:${num(ctx.vars, 'nginx_status_port')}`];
    return [command(RELOAD, { cmd: reloadCommand(sockets) })];
  },
};
