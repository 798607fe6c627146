import type { Host } from '../../inventory/index.js';
import { Secret } from '../../util/secrets.js';
import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import { GROUPS, privateAddress } from '../shared.js';
import type { RoleContext } from '../types.js';
import { pick, shared, text, wholeNumber } from '../vars.js';
import { apt, copy, service, template } from '../../modules/tasks.js';
import { ALERT_RULES_FILE, alertRulesYaml, extraAlertRule } from './rules.js';
import { compareText } from '../../util/compare-text.js';

export interface ScrapeJob {
  job: string;
  metrics_path: string;
  targets: Array<{ address: string; instance: string }>;
}

type PortVar = 'prometheus_port' | 'node_exporter_port' | 'haproxy_exporter_port' | 'nginx_exporter_port' | 'mysqld_exporter_port';

function hostPort(vars: PrometheusVars, h: Host, name: PortVar): number {
  // A host may run an exporter on a port of its own (host var); otherwise the shared one.
  const own = h.vars[name];
  return typeof own === 'number' ? own : vars[name];
}

function target(vars: PrometheusVars, h: Host, portVar: PortVar) {
  const a = privateAddress(h);
  return { address: `${a.includes(':') ? `[${a}]` : a}:${hostPort(vars, h, portVar)}`, instance: h.name };
}

/** Scrape jobs from the inventory: node on every host, each service's exporter on its group. */
export function scrapeJobs(ctx: Pick<RoleContext<PrometheusVars>, 'host' | 'vars' | 'inventory' | 'hostsIn'>): ScrapeJob[] {
  const v = ctx.vars;
  const byName = (hs: Host[]) => [...hs].sort((a, b) => compareText(a.name, b.name));
  const job = (name: string, hosts: Host[], portVar: PortVar, path = '/metrics'): ScrapeJob => ({
    job: name,
    metrics_path: path,
    targets: byName(hosts).map((h) => target(v, h, portVar)),
  });
  const jobs = [
    job('prometheus', [ctx.host], 'prometheus_port'),
    job('node', [...ctx.inventory.hosts.values()], 'node_exporter_port'),
    job('haproxy', ctx.hostsIn(GROUPS.loadbalancers), 'haproxy_exporter_port', v.haproxy_metrics_path),
    job('nginx', ctx.hostsIn(GROUPS.webservers), 'nginx_exporter_port'),
    job('mysqld', ctx.hostsIn(GROUPS.databases), 'mysqld_exporter_port'),
  ];
  return jobs.filter((j) => j.targets.length > 0);
}

const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;
const duration = () => text(DURATION, 'must be a Prometheus duration like 15s, 5m or 15d', 'duration');
/** Milliseconds of a one-unit duration up to hours (what a scrape interval is), else undefined. */
function durationMs(s: unknown): number | undefined {
  const m = /^(\d+)(ms|s|m|h)$/.exec(String(s));
  return m ? Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms'] : undefined;
}

const LABELS = 'must be a map of label names to strings';
const CLEAR = 'must be a secret (!secret NAME), never a value in clear';
const secretParam = () => z.instanceof(Secret, { error: CLEAR }).optional();
const remoteWrite = z
  .strictObject(
    {
      url: text(/^https?:\/\/\S+$/, 'must be an http(s) URL', 'URL'),
      name: z.string().optional(),
      bearer_token: secretParam(),
      basic_auth_username: z.string().optional(),
      basic_auth_password: secretParam(),
    },
    { error: (iss) => (iss.code === 'invalid_type' ? 'must be { url, … }' : undefined) },
  )
  .superRefine(
    (r, ctx) => {
      const issue = (message: string) => ctx.addIssue({ code: 'custom', path: [], message });
      if ((r.basic_auth_username === undefined) !== (r.basic_auth_password === undefined)) issue('basic_auth_username and basic_auth_password go together');
      if (r.bearer_token !== undefined && r.basic_auth_username !== undefined) issue('give bearer_token or basic auth, not both');
    },
    { when: (payload) => !!payload.value && typeof payload.value === 'object' },
  );

const vars = withRules(
  z.object({
    private_address: shared('private_address', 'Where Prometheus listens.'),
    ...pick('prometheus_port', 'node_exporter_port', 'haproxy_exporter_port', 'nginx_exporter_port', 'mysqld_exporter_port'),
    haproxy_metrics_path: text(/^\/[A-Za-z0-9._/-]*$/, 'must be a path like /metrics', 'URL path')
      .default('/metrics')
      .describe("Where HAProxy's built-in exporter answers (the haproxy role's prometheus frontend)."),
    prometheus_scrape_interval: duration().default('15s').describe('How often every target is scraped.'),
    prometheus_scrape_timeout: duration().default('10s').describe('How long a scrape may take (not longer than the interval).'),
    prometheus_evaluation_interval: duration().default('15s').describe('How often rules are evaluated.'),
    prometheus_retention_time: duration().default('15d').describe('How long samples are kept (`--storage.tsdb.retention.time`).'),
    prometheus_retention_size: text(/^(\d+(B|KB|MB|GB|TB|PB|EB))?$/, 'must be empty or a size like 10GB', 'size')
      .default('')
      .describe('Also cap the TSDB size, e.g. `10GB`; `""`: no cap.'),
    prometheus_external_labels: z
      .record(z.string(), z.string({ error: LABELS }), { error: LABELS })
      .refine((o) => Object.keys(o).every((k) => /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k)), { error: LABELS })
      .meta({ type: 'map of label names to strings' })
      .default({})
      .describe('Labels added to every series sent elsewhere (remote_write, federation), e.g. `{ site: prod }`.'),
    prometheus_public_certificate_alert_days: wholeNumber(1, 60, 'a whole number of days from 1 to 60')
      .default(14)
      .describe('Alert `PublicCertificateExpiringSoon` when the public certificate ends within this many days.'),
    prometheus_internal_certificate_alert_days: wholeNumber(1, 365, 'a whole number of days from 1 to 365')
      .default(30)
      .describe('Alert `InternalCertificateExpiringSoon` when a backend or database certificate (internal CA) ends within this many days.'),
    prometheus_replication_lag_alert_seconds: wholeNumber(1, undefined, 'a whole number of seconds ≥ 1')
      .default(30)
      .describe('Alert `MysqlReplicationLagging` when a replica is further behind than this for 2 minutes.'),
    prometheus_alert_rules_extra: z
      .array(extraAlertRule, { error: 'must be a list of { alert, expr, for?, labels?, annotations? }' })
      .meta({ type: 'list of { alert, expr, for?, labels?, annotations? }' })
      .default([])
      .describe('Alert rules of your own, added to the file (checked by `promtool check rules` on the host: a bad one fails the run, the live file stays).'),
    prometheus_remote_write: z
      .array(remoteWrite, { error: 'must be a list of { url, … }' })
      .meta({ type: 'list of { url, name?, bearer_token?, basic_auth_username?, basic_auth_password? }' })
      .default([])
      .describe(
        'Also ship every sample to these. Credentials are `!secret`s, never clear text: `bearer_token`, or `basic_auth_username` with ' +
          '`basic_auth_password` (not both). See [monitoring.md](monitoring.md#sending-the-metrics-somewhere-else-sumo-logic-any-remote_write-backend).',
      ),
  }),
  [
    {
      says: '`prometheus_scrape_timeout` is not longer than `prometheus_scrape_interval`.',
      check: (v) => {
        const interval = durationMs(v.prometheus_scrape_interval);
        const timeout = durationMs(v.prometheus_scrape_timeout);
        return problemIf(interval !== undefined && timeout !== undefined && timeout > interval, 'prometheus_scrape_timeout', 'must not be longer than prometheus_scrape_interval');
      },
    },
  ],
);
type PrometheusVars = z.output<typeof vars>;

export const role = defineRole({
  name: 'prometheus',
  description:
    'The Prometheus server (Debian package `prometheus`) on the `monitoring` group (mon-01), scraping every exporter the inventory implies, ' +
    "listening on the host's private address.",
  vars,
  tasks(ctx) {
    const v = ctx.vars;
    const addr = privateAddress(ctx.host);
    const args = [
      `--web.listen-address=${addr.includes(':') ? `[${addr}]` : addr}:${v.prometheus_port}`,
      `--storage.tsdb.retention.time=${v.prometheus_retention_time}`,
      ...(v.prometheus_retention_size ? [`--storage.tsdb.retention.size=${v.prometheus_retention_size}`] : []),
    ];
    return [
      apt('install prometheus', { packages: ['prometheus'] }),
      // Before the scrape configuration that names it (its own check reads the rule files too).
      copy('prometheus alert rules', {
        content: alertRulesYaml({
          publicCertificateDays: v.prometheus_public_certificate_alert_days,
          internalCertificateDays: v.prometheus_internal_certificate_alert_days,
          replicationLagSeconds: v.prometheus_replication_lag_alert_seconds,
          databases: ctx.hostsIn(GROUPS.databases).length > 0,
          extra: v.prometheus_alert_rules_extra,
        }),
        dest: ALERT_RULES_FILE,
        mode: '0644',
        owner: 'root',
        group: 'root',
        validate: 'promtool check rules %s',
      }, { notify: 'reload prometheus' }),
      template('prometheus scrape configuration', {
        src: ctx.file('templates/prometheus.yml.njk'),
        dest: '/etc/prometheus/prometheus.yml',
        mode: '0640',
        owner: 'root',
        group: 'prometheus',
        validate: 'promtool check config %s',
        vars: { ...v, jobs: scrapeJobs(ctx), rule_files: [ALERT_RULES_FILE] },
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
});
