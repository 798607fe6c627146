import { z } from 'zod';
import type { Task } from '../../modules/index.js';
import { command, file, service, template } from '../../modules/tasks.js';
import { haproxyCertPath } from '../haproxy/index.js';
import { INTERNAL_CERT_FILE, OWN_CERT_FILE } from '../nginx/index.js';
import { GROUPS } from '../shared.js';
import type { RoleContext } from '../types.js';

/*
 * Certificates watched by the monitoring (issue 17 item 3): every host that holds a certificate gets
 * a node-exporter textfile, provision_certificates.prom, with each certificate's end and (where
 * certbot renews) whether the last renewal failed. The alert rules (prometheus role) read it.
 */

export const CERTIFICATE_METRICS_SCRIPT = '/usr/local/sbin/provision-certificate-metrics';
export const CERTIFICATE_METRICS_UNIT = 'provision-certificate-metrics';
export const CERTIFICATE_METRICS_FILE = 'provision_certificates.prom';
/** Handler: a changed unit file is read by systemd, and the timer rescheduled from it. */
export const CERTIFICATE_METRICS_RELOAD = 'reload the certificate metrics timer';
export const certificateMetricsHandler = () =>
  command(CERTIFICATE_METRICS_RELOAD, { cmd: `systemctl daemon-reload && systemctl restart ${CERTIFICATE_METRICS_UNIT}.timer` });
export const CERTIFICATE_ROLES = ['public', 'backend', 'db'] as const;
export type CertificateRole = (typeof CERTIFICATE_ROLES)[number];

/** A path that goes into a metric label and a shell here-document as it is: nothing to escape. */
const SAFE_PATH = /^\/[A-Za-z0-9._/@+-]+$/;
export const monitoredCertificate = z.strictObject(
  {
    path: z.string().regex(SAFE_PATH, 'an absolute path of letters, digits and . _ / @ + - only'),
    role: z.enum(CERTIFICATE_ROLES, { error: `one of ${CERTIFICATE_ROLES.join(', ')}` }),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'must be { path, role }' : undefined) },
);
export type MonitoredCertificate = z.output<typeof monitoredCertificate>;

/**
 * Where the database server's certificate is, for the `db` metric: the mysql role's TLS (issue 16)
 * puts it here unless `db_tls_cert_file` says otherwise.
 */
export const DEFAULT_DB_CERT_FILE = '/etc/mysql/tls/server.pem';

/** The node exporter's textfile folder as Debian's package makes it. */
export const DEFAULT_TEXTFILE_DIR = '/var/lib/prometheus/node-exporter';

export interface CertificateVarsSlice {
  domain: string;
  backend_tls: boolean;
  db_tls_cert_file: string;
  monitored_certificates: MonitoredCertificate[];
  node_exporter_textfile_dir: string;
  certificate_metrics_calendar: string;
}

/**
 * The certificates this host holds, from its groups: HAProxy's PEM on a load balancer (the public
 * one, ACME or the placeholder), the web server's backend certificate (internal CA or your own:
 * whichever file exists), the database's; plus `monitored_certificates`. A listed file that does not
 * exist on the host is skipped by the script.
 */
export function hostCertificates(groups: readonly string[], v: CertificateVarsSlice): MonitoredCertificate[] {
  const list: MonitoredCertificate[] = [];
  if (groups.includes(GROUPS.loadbalancers)) list.push({ role: 'public', path: haproxyCertPath(v.domain) });
  if (groups.includes(GROUPS.webservers) && v.backend_tls) list.push({ role: 'backend', path: INTERNAL_CERT_FILE }, { role: 'backend', path: OWN_CERT_FILE });
  if (groups.includes(GROUPS.databases) && v.db_tls_cert_file) list.push({ role: 'db', path: v.db_tls_cert_file });
  list.push(...v.monitored_certificates);
  const seen = new Set<string>();
  return list.filter((c) => !seen.has(c.path) && seen.add(c.path));
}

/** The script, its timer, and one run now (only when the file is not already what it would write). */
export function certificateMetricsTasks(ctx: RoleContext<CertificateVarsSlice>): Task[] {
  const v = ctx.vars;
  const certificates = hostCertificates(ctx.host.groups, v);
  if (certificates.length === 0) return [];
  const unitFile = (kind: 'service' | 'timer', vars: Record<string, unknown>) =>
    template(`certificate metrics ${kind}`, {
      src: ctx.file(`templates/certificate-metrics.${kind}.njk`),
      dest: `/etc/systemd/system/${CERTIFICATE_METRICS_UNIT}.${kind}`,
      mode: '0644',
      owner: 'root',
      group: 'root',
      vars,
    }, { notify: CERTIFICATE_METRICS_RELOAD });
  return [
    // Debian's prometheus-node-exporter makes its own folder (root 0755) when the exporters are installed: a task for
    // it would be planned on fresh hosts and then find nothing to do (plans must equal what runs). Another folder is ours.
    ...(v.node_exporter_textfile_dir === DEFAULT_TEXTFILE_DIR
      ? []
      : [file('textfile collector folder', { path: v.node_exporter_textfile_dir, state: 'directory', mode: '0755', owner: 'root', group: 'root' })]),
    template('certificate metrics script', {
      src: ctx.file('templates/certificate-metrics.sh.njk'),
      dest: CERTIFICATE_METRICS_SCRIPT,
      mode: '0755',
      owner: 'root',
      group: 'root',
      validate: 'sh -n %s',
      vars: { textfile_dir: v.node_exporter_textfile_dir, certificates },
    }),
    unitFile('service', { script: CERTIFICATE_METRICS_SCRIPT }),
    unitFile('timer', { calendar: v.certificate_metrics_calendar }),
    // Before the timer starts: a timer started for the first time may run the service at once (Persistent=), and the
    // run would then find the file current where the plan said it runs the script.
    command('certificate metrics are current', { cmd: CERTIFICATE_METRICS_SCRIPT, unless: `${CERTIFICATE_METRICS_SCRIPT} --check` }),
    service('certificate metrics timer', { name: `${CERTIFICATE_METRICS_UNIT}.timer`, state: 'started', enabled: true, daemon_reload: true }),
  ];
}
