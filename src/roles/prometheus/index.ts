import type { Host } from '../../inventory/index.js';
import { Secret } from '../../util/secrets.js';
import { GROUPS, privateAddress, SHARED_DEFAULTS } from '../shared.js';
import type { RoleContext, RoleDef } from '../types.js';
import { apt, service, template } from '../../modules/tasks.js';

export interface ScrapeJob {
  job: string;
  metrics_path: string;
  targets: Array<{ address: string; instance: string }>;
}

interface RemoteWrite {
  url: string;
  name?: string;
  bearer_token?: Secret;
  basic_auth_username?: string;
  basic_auth_password?: Secret;
}

function hostPort(vars: Record<string, unknown>, h: Host, name: string): number {
  // A host may run an exporter on a port of its own (host var); otherwise the shared one.
  const own = h.vars[name];
  return typeof own === 'number' ? own : (vars[name] as number);
}

function target(vars: Record<string, unknown>, h: Host, portVar: string) {
  const a = privateAddress(h);
  return { address: `${a.includes(':') ? `[${a}]` : a}:${hostPort(vars, h, portVar)}`, instance: h.name };
}

/** Scrape jobs from the inventory: node on every host, each service's exporter on its group. */
export function scrapeJobs(ctx: Pick<RoleContext, 'host' | 'vars' | 'inventory' | 'hostsIn'>): ScrapeJob[] {
  const v = ctx.vars;
  const byName = (hs: Host[]) => [...hs].sort((a, b) => a.name.localeCompare(b.name));
  const job = (name: string, hosts: Host[], portVar: string, path = '/metrics'): ScrapeJob => ({
    job: name,
    metrics_path: path,
    targets: byName(hosts).map((h) => target(v, h, portVar)),
  });
  const jobs = [
    job('prometheus', [ctx.host], 'prometheus_port'),
    job('node', [...ctx.inventory.hosts.values()], 'node_exporter_port'),
    job('haproxy', ctx.hostsIn(GROUPS.loadbalancers), 'haproxy_exporter_port', v.haproxy_metrics_path as string),
    job('nginx', ctx.hostsIn(GROUPS.webservers), 'nginx_exporter_port'),
    job('mysqld', ctx.hostsIn(GROUPS.databases), 'mysqld_exporter_port'),
  ];
  return jobs.filter((j) => j.targets.length > 0);
}

const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

export const role: RoleDef = {
  name: 'prometheus',
  description: 'Prometheus server scraping every exporter of the inventory, on the private address',
  defaults: {
    private_address: SHARED_DEFAULTS.private_address,
    prometheus_port: SHARED_DEFAULTS.prometheus_port,
    node_exporter_port: SHARED_DEFAULTS.node_exporter_port,
    haproxy_exporter_port: SHARED_DEFAULTS.haproxy_exporter_port,
    nginx_exporter_port: SHARED_DEFAULTS.nginx_exporter_port,
    mysqld_exporter_port: SHARED_DEFAULTS.mysqld_exporter_port,
    /** Where HAProxy's built-in exporter answers (the haproxy role's prometheus frontend). */
    haproxy_metrics_path: '/metrics',
    prometheus_scrape_interval: '15s',
    prometheus_scrape_timeout: '10s',
    prometheus_evaluation_interval: '15s',
    /** How long samples are kept (--storage.tsdb.retention.time). */
    prometheus_retention_time: '15d',
    /** Also cap the TSDB size, e.g. "10GB" ('' = no cap). */
    prometheus_retention_size: '',
    /** Labels added to every series sent elsewhere (remote_write, federation), e.g. { site: lab }. */
    prometheus_external_labels: {},
    /** Also ship every sample to these: [{ url, name?, bearer_token?: !secret, basic_auth_username?, basic_auth_password?: !secret }]. */
    prometheus_remote_write: [],
  },
  tasks(ctx) {
    const v = ctx.vars;
    const addr = privateAddress(ctx.host);
    const args = [
      `--web.listen-address=${addr.includes(':') ? `[${addr}]` : addr}:${v.prometheus_port as number}`,
      `--storage.tsdb.retention.time=${v.prometheus_retention_time as string}`,
      ...(v.prometheus_retention_size ? [`--storage.tsdb.retention.size=${v.prometheus_retention_size as string}`] : []),
    ];
    return [
      apt('install prometheus', { packages: ['prometheus'] }),
      template('prometheus scrape configuration', {
        src: ctx.file('templates/prometheus.yml.njk'),
        dest: '/etc/prometheus/prometheus.yml',
        mode: '0640',
        owner: 'root',
        group: 'prometheus',
        validate: 'promtool check config %s',
        vars: { ...v, jobs: scrapeJobs(ctx) },
      }, { notify: 'reload prometheus' }),
      template('prometheus server options', {
        src: ctx.file('templates/prometheus-default.njk'),
        dest: '/etc/default/prometheus',
        mode: '0644',
        owner: 'root',
        group: 'root',
        validate: 'sh -n %s',
        vars: { args: args.join(' ') },
      }, { notify: 'restart prometheus' }),
      service('prometheus runs and starts at boot', { name: 'prometheus', state: 'started', enabled: true }),
    ];
  },
  handlers: () => [
    // Listening address and retention are flags: a restart. The scrape config: a reload (SIGHUP).
    service('restart prometheus', { name: 'prometheus', state: 'restarted' }),
    service('reload prometheus', { name: 'prometheus', state: 'reloaded' }),
  ],
  validate(vars) {
    const problems: string[] = [];
    for (const name of ['prometheus_port', 'node_exporter_port', 'haproxy_exporter_port', 'nginx_exporter_port', 'mysqld_exporter_port'] as const) {
      const p = vars[name];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) problems.push(`${name}: must be a port number (1-65535)`);
    }
    for (const name of ['prometheus_scrape_interval', 'prometheus_scrape_timeout', 'prometheus_evaluation_interval', 'prometheus_retention_time'] as const) {
      if (typeof vars[name] !== 'string' || !DURATION.test(vars[name] as string)) problems.push(`${name}: must be a Prometheus duration like 15s, 5m or 15d`);
    }
    const dur = (s: unknown) => {
      const m = /^(\d+)(ms|s|m|h)$/.exec(String(s));
      return m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms'] : undefined;
    };
    const iv = dur(vars.prometheus_scrape_interval);
    const to = dur(vars.prometheus_scrape_timeout);
    if (iv !== undefined && to !== undefined && to > iv) problems.push('prometheus_scrape_timeout: must not be longer than prometheus_scrape_interval');
    const size = vars.prometheus_retention_size;
    if (typeof size !== 'string' || (size !== '' && !/^\d+(B|KB|MB|GB|TB|PB|EB)$/.test(size))) problems.push('prometheus_retention_size: must be empty or a size like 10GB');
    if (typeof vars.haproxy_metrics_path !== 'string' || !/^\/[A-Za-z0-9._/-]*$/.test(vars.haproxy_metrics_path)) problems.push('haproxy_metrics_path: must be a path like /metrics');
    const labels = vars.prometheus_external_labels;
    if (!labels || typeof labels !== 'object' || Array.isArray(labels) || Object.entries(labels).some(([k, x]) => !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k) || typeof x !== 'string')) {
      problems.push('prometheus_external_labels: must be a map of label names to strings');
    }
    const rw = vars.prometheus_remote_write;
    if (!Array.isArray(rw)) problems.push('prometheus_remote_write: must be a list of { url, … }');
    else {
      (rw as Array<Partial<RemoteWrite> & Record<string, unknown>>).forEach((r, i) => {
        const at = `prometheus_remote_write[${i}]`;
        if (!r || typeof r !== 'object') return void problems.push(`${at}: must be { url, … }`);
        const allowed = new Set(['url', 'name', 'bearer_token', 'basic_auth_username', 'basic_auth_password']);
        for (const k of Object.keys(r)) if (!allowed.has(k)) problems.push(`${at}.${k}: unknown field (allowed: ${[...allowed].join(', ')})`);
        if (typeof r.url !== 'string' || !/^https?:\/\/\S+$/.test(r.url)) problems.push(`${at}.url: must be an http(s) URL`);
        for (const k of ['bearer_token', 'basic_auth_password'] as const) {
          if (r[k] !== undefined && !(r[k] instanceof Secret)) problems.push(`${at}.${k}: must be a secret (!secret NAME), never a value in clear`);
        }
        if ((r.basic_auth_username === undefined) !== (r.basic_auth_password === undefined)) problems.push(`${at}: basic_auth_username and basic_auth_password go together`);
        if (r.bearer_token !== undefined && r.basic_auth_username !== undefined) problems.push(`${at}: give bearer_token or basic auth, not both`);
      });
    }
    return problems;
  },
};
