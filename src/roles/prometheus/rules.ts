import { stringify } from 'yaml';
import { z } from 'zod';

/*
 * The alert rules Prometheus evaluates (issues 16 item 6 and 17 item 3), written as data and dumped
 * as YAML (no template: a value can never break the YAML). The file is checked on the host with
 * `promtool check rules` before it replaces the live one (the copy module's validate: a bad rule
 * fails the task and leaves the live file as it was). test/prometheus/provision-alerts.test.yml
 * holds the rule tests (`promtool test rules`), run by test/integration/watch.test.ts.
 *
 * Metrics: provision_certificate_* from the node exporter's textfile (monitoring role); mysql_*
 * from Debian's mysqld exporter (0.14): mysql_global_variables_read_only (1 = read-only),
 * mysql_slave_status_slave_{io,sql}_running (Yes = 1; No and Connecting = 0),
 * mysql_slave_status_seconds_behind_master (absent while the SQL thread is stopped).
 */

export const ALERT_RULES_FILE = '/etc/prometheus/provision-alerts.yml';

const ALERT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const labelMap = (what: string) =>
  z
    .record(z.string(), z.string({ error: `${what} values must be strings` }))
    .refine((o) => Object.keys(o).every((k) => LABEL_NAME.test(k)), { error: `${what} names must be label names (letters, digits, _)` });

/** One rule of your own (`prometheus_alert_rules_extra`); checked by promtool on the host like ours. */
export const extraAlertRule = z.strictObject(
  {
    alert: z.string().regex(ALERT_NAME, 'an alert name (letters, digits, _)'),
    expr: z.string().min(1, 'a PromQL expression'),
    for: z.string().regex(DURATION, 'a duration like 5m').optional(),
    labels: labelMap('labels').optional(),
    annotations: labelMap('annotations').optional(),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'must be { alert, expr, for?, labels?, annotations? }' : undefined) },
);
export type ExtraAlertRule = z.output<typeof extraAlertRule>;

export interface AlertRuleOptions {
  /** Days before its end that the public (ACME) certificate alerts. */
  publicCertificateDays: number;
  /** Days before its end that an internal certificate (backend, db) alerts. */
  internalCertificateDays: number;
  /** Seconds a replica may lag before it alerts. */
  replicationLagSeconds: number;
  /** The inventory has database hosts: the replication and writer rules (one of them alerts on absence). */
  databases: boolean;
  extra: ExtraAlertRule[];
}

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const rule = (alert: string, expr: string, severity: 'warning' | 'critical', summary: string, forDuration?: string): Rule => ({
  alert,
  expr,
  ...(forDuration ? { for: forDuration } : {}),
  labels: { severity },
  annotations: { summary },
});

const DAY = 86_400;
const CERT = 'provision_certificate_expiry_timestamp_seconds';

export function alertRules(o: AlertRuleOptions): { groups: Array<{ name: string; rules: Array<Rule | ExtraAlertRule> }> } {
  const certificates: Rule[] = [
    rule(
      'PublicCertificateExpiringSoon',
      `${CERT}{role="public"} - time() < ${o.publicCertificateDays * DAY}`,
      'critical',
      `{{ $labels.instance }}: the public certificate {{ $labels.path }} ends within ${o.publicCertificateDays} days (renewal is not working)`,
    ),
    rule(
      'InternalCertificateExpiringSoon',
      `${CERT}{role=~"backend|db"} - time() < ${o.internalCertificateDays * DAY}`,
      'warning',
      `{{ $labels.instance }}: the {{ $labels.role }} certificate {{ $labels.path }} ends within ${o.internalCertificateDays} days (a converge re-issues it)`,
    ),
    rule('CertificateRenewalFailed', 'provision_certificate_renewal_failed == 1', 'critical', "{{ $labels.instance }}: certbot's last renewal failed (journalctl -u certbot)"),
  ];
  const database: Rule[] = [
    rule('MysqlReplicationIOStopped', 'mysql_slave_status_slave_io_running == 0', 'critical', '{{ $labels.instance }}: the replication IO thread is not running (not receiving from its source)', '1m'),
    rule('MysqlReplicationSQLStopped', 'mysql_slave_status_slave_sql_running == 0', 'critical', '{{ $labels.instance }}: the replication SQL thread is not running (not applying)', '1m'),
    rule(
      'MysqlReplicationLagging',
      `mysql_slave_status_seconds_behind_master > ${o.replicationLagSeconds}`,
      'warning',
      `{{ $labels.instance }}: replication is {{ $value }} s behind its source (bound ${o.replicationLagSeconds} s)`,
      '2m',
    ),
    rule(
      'MysqlNoWritablePrimary',
      // absent(): also when no database server is scraped at all (then nothing is known to take writes).
      'absent(mysql_global_variables_read_only == 0)',
      'critical',
      'no database server accepts writes (every one is read-only or unreachable)',
      '1m',
    ),
    rule('MysqlTwoWritablePrimaries', 'count(mysql_global_variables_read_only == 0) > 1', 'critical', '{{ $value }} database servers accept writes at once (split brain): fence one now'),
  ];
  const groups: Array<{ name: string; rules: Array<Rule | ExtraAlertRule> }> = [{ name: 'provision-certificates', rules: certificates }];
  if (o.databases) groups.push({ name: 'provision-database', rules: database });
  if (o.extra.length) groups.push({ name: 'provision-extra', rules: o.extra });
  return { groups };
}

export function alertRulesYaml(o: AlertRuleOptions): string {
  return '# Managed by provision (role prometheus). Local changes are overwritten.\n' + stringify(alertRules(o), { lineWidth: 0 });
}
