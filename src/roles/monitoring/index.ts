import { type Task } from '../../modules/index.js';
import { quote } from '../../util/quote.js';
import { Secret } from '../../util/secrets.js';
import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import { GROUPS, inGroup, privateAddress } from '../shared.js';
import type { RoleContext } from '../types.js';
import { absolutePath, pick, shared, stringList, text, wholeNumber } from '../vars.js';
import { apt, command, copy, service, template } from '../../modules/tasks.js';
import { certificateMetricsHandler, certificateMetricsTasks, DEFAULT_DB_CERT_FILE, DEFAULT_TEXTFILE_DIR, monitoredCertificate } from './certificates.js';

interface Exporter {
  /** Debian package = systemd unit. */
  unit: string;
  /** Everything the unit reads besides its package's files, each written before the unit is (re)started. */
  files: Task[];
  /** Written before the exporters' packages are installed (the mysqld exporter's drop-in). */
  beforeInstall?: Task[];
  /** Where its package leaves the unit after installing it: the mysqld exporter's drop-in keeps it from starting before its credentials exist. */
  afterInstall?: 'started' | 'stopped';
}

/** The mysqld exporter's drop-in: written before its package, so that the package's start at install is skipped. */
export const MYSQLD_EXPORTER_DROPIN = '/etc/systemd/system/prometheus-mysqld-exporter.service.d/provision-credentials.conf';
const DAEMON_RELOAD = 'systemd reads the mysqld exporter drop-in';

/**
 * One exporter (installed with the others just before): write its files (each change notifies a restart), then make sure it runs.
 * A unit that crashed before its config existed sits in "failed", possibly with its start limit hit
 * (an earlier run that failed midway, or a host converged before the mysqld exporter's drop-in): that
 * is cleared before the start, so the exporter ends up running even when the files were already right.
 */
function exporterTasks(e: Exporter): Task[] {
  const u = quote(e.unit);
  return [
    ...e.files,
    command(`clear a failed ${e.unit} (start limit)`, { cmd: `systemctl reset-failed ${u}`, onlyif: `systemctl is-failed --quiet ${u}` }),
    service(`${e.unit} runs and starts at boot`, { name: e.unit, state: 'started', enabled: true, after_install: e.afterInstall }),
  ];
}

/**
 * Debian's prometheus-mysqld-exporter starts its unit at install, and without credentials the
 * exporter exits at once and is restarted until its start limit: "activating" or "failed" depending
 * on when one looks, so that neither a run nor a plan could tell in advance whether there was a
 * failed unit to clear or a start to make. This drop-in, written before the package, makes the unit
 * start only once its credentials file exists: at install it is skipped (inactive, not failed), and
 * the role starts it once configured, whatever the timing. The package's postinst reloads systemd
 * before that start; a host that already has the package reloads through the handler.
 */
function mysqldExporterDropIn(cnf: string): Task {
  return copy(
    'the mysqld exporter starts only once its credentials exist',
    {
      content:
        '# Managed by provision (monitoring role): without its credentials the exporter cannot run;\n' +
        '# until they exist, systemd skips its start (inactive) instead of a crash loop (failed).\n' +
        `[Unit]\nConditionPathExists=${cnf}\n`,
      dest: MYSQLD_EXPORTER_DROPIN,
      mode: '0644',
      owner: 'root',
      group: 'root',
      make_parents: true,
    },
    { notify: DAEMON_RELOAD },
  );
}

function defaultsFile(ctx: RoleContext<MonitoringVars>, unit: string, args: string[]): Task {
  return template(`${unit} options`, {
    src: ctx.file('templates/exporter-default.njk'),
    dest: `/etc/default/${unit}`,
    mode: '0644',
    owner: 'root',
    group: 'root',
    validate: 'sh -n %s',
    vars: { unit, args: args.join(' ') },
  }, { notify: `restart ${unit}` });
}

function exporters(ctx: RoleContext<MonitoringVars>): Exporter[] {
  const v = ctx.vars;
  const addr = privateAddress(ctx.host);
  const listen = (port: number) => `${addr.includes(':') ? `[${addr}]` : addr}:${port}`;
  const list: Exporter[] = [
    {
      unit: 'prometheus-node-exporter',
      files: [defaultsFile(ctx, 'prometheus-node-exporter', [
          `--web.listen-address=${listen(v.node_exporter_port)}`,
          // Said, not left to the package's default: the certificate metrics are written there.
          `--collector.textfile.directory=${v.node_exporter_textfile_dir}`,
          ...v.node_exporter_extra_args,
        ])],
    },
  ];
  if (inGroup(ctx, GROUPS.webservers)) {
    list.push({
      unit: 'prometheus-nginx-exporter',
      files: [
        defaultsFile(ctx, 'prometheus-nginx-exporter', [
          `-nginx.scrape-uri=http://127.0.0.1:${v.nginx_status_port}/stub_status`,
          `-web.listen-address=${listen(v.nginx_exporter_port)}`,
          // Nginx reloading or restarting must not leave the exporter exited for good.
          `-nginx.retries=${v.nginx_exporter_retries}`,
        ]),
      ],
    });
  }
  if (inGroup(ctx, GROUPS.databases)) {
    const cnf = v.mysqld_exporter_my_cnf;
    list.push({
      unit: 'prometheus-mysqld-exporter',
      afterInstall: 'stopped',
      beforeInstall: [mysqldExporterDropIn(cnf)],
      files: [
        template('mysqld exporter credentials', {
          src: ctx.file('templates/mysqld-exporter.cnf.njk'),
          dest: cnf,
          mode: '0600',
          owner: v.exporter_system_user,
          group: v.exporter_system_user,
          make_parents: true,
          sensitive: true,
          vars: v,
        }, { notify: 'restart prometheus-mysqld-exporter' }),
        defaultsFile(ctx, 'prometheus-mysqld-exporter', [`--config.my-cnf=${cnf}`, `--web.listen-address=${listen(v.mysqld_exporter_port)}`]),
      ],
    });
  }
  // Load balancers: HAProxy serves its own metrics (configured by the haproxy role); nothing to add.
  return list;
}

const absolute = () => absolutePath('must be an absolute path');
const MY_CNF_SAFE = 'must be non-empty, without newlines, quotes or backslashes (it goes into a my.cnf)';

const vars = withRules(
  z.object({
    private_address: shared('private_address', 'Where the exporters listen.'),
    domain: shared('domain', "The public certificate's name (HAProxy's PEM on the load balancers), for the certificate metrics."),
    backend_tls: shared('backend_tls', "With it, the web servers' backend certificate is in the certificate metrics."),
    ...pick('node_exporter_port', 'nginx_exporter_port', 'mysqld_exporter_port', 'nginx_status_port', 'mysql_exporter_user', 'mysql_exporter_password'),
    mysql_socket: absolute().default('/run/mysqld/mysqld.sock').describe("The server's local socket: the exporter never needs TCP to MySQL."),
    mysqld_exporter_my_cnf: text(/^(\/(?!\.\.?(\/|$))[A-Za-z0-9._+-]+)+$/, 'must be an absolute path, normalized (no "." or ".." part, no trailing "/"), of letters, digits and . _ + - (it goes into a systemd unit and the exporter\'s options)', 'absolute path')
      .default('/etc/prometheus/mysqld-exporter.cnf')
      .describe("The mysqld exporter's credentials file (mode 0600, never diffed); its unit starts only once it exists."),
    exporter_system_user: text(/^[a-z_][a-z0-9_-]*$/, 'must be a user name', 'user name')
      .default('prometheus')
      .describe("The account Debian's exporter units run as (owns the credentials file)."),
    node_exporter_extra_args: stringList(/^--?[A-Za-z0-9._-]+(=[^\s"'`$\\]*)?$/, 'must be a list of flags like "--collector.systemd" (no spaces or quotes)', 'list of flags')
      .default([])
      .describe('Extra node exporter flags, e.g. `["--collector.systemd"]`.'),
    node_exporter_textfile_dir: absolute()
      .default(DEFAULT_TEXTFILE_DIR)
      .describe("The node exporter's textfile collector folder (`--collector.textfile.directory`): the certificate metrics are written there."),
    db_tls_cert_file: z
      .union([absolute(), z.literal('')])
      .default(DEFAULT_DB_CERT_FILE)
      .describe('On database hosts, the server certificate watched as `role="db"` (the mysql role\'s TLS); `""`: none.'),
    monitored_certificates: z
      .array(monitoredCertificate, { error: 'must be a list of { path, role }' })
      .meta({ type: 'list of { path, role: public | backend | db }' })
      .default([])
      .describe('More certificate files (PEM) on this host to watch, besides the ones its groups imply (HAProxy\'s, the backend\'s, the database\'s).'),
    certificate_metrics_calendar: text(/^[A-Za-z0-9 *:,./~-]+$/, 'must be a systemd calendar expression like "hourly"', 'calendar expression')
      .default('hourly')
      .describe('How often the certificate metrics are refreshed (systemd `OnCalendar`); the converge and certbot\'s deploy hook refresh them too.'),
    nginx_exporter_retries: wholeNumber(0, undefined, 'must be a whole number')
      .default(60)
      .describe('How often (5 s apart) the Nginx exporter retries stub_status at start before giving up.'),
  }),
  [
    {
      says: '`mysql_exporter_password` has no newline, quote or backslash (it goes into a my.cnf).',
      check: (v) => {
        const pw = v.mysql_exporter_password as unknown;
        return problemIf(pw instanceof Secret && (pw.reveal().length === 0 || /[\n"\\]/.test(pw.reveal())), 'mysql_exporter_password', MY_CNF_SAFE);
      },
    },
  ],
);
type MonitoringVars = z.output<typeof vars>;

const UNITS = ['prometheus-node-exporter', 'prometheus-nginx-exporter', 'prometheus-mysqld-exporter'];

export const role = defineRole({
  name: 'monitoring',
  description:
    "The collectors: Prometheus exporters on every host, each listening **only on the host's private address**, reachable only " +
    'from `monitoring_cidrs` (the firewall role): node everywhere, Nginx on the web servers, MySQL on the database hosts. Runs ' +
    'after the service roles (play "Monitoring collectors on every host").',
  vars,
  hostRules: [
    {
      says: `On hosts of group \`${GROUPS.databases}\`, \`mysql_exporter_password\` is required (a \`!secret\`).`,
      check: (v, host) =>
        problemIf(
          host.groups.includes(GROUPS.databases) && v.mysql_exporter_password === undefined,
          'mysql_exporter_password',
          'required on database hosts, as a !secret (mysql_exporter_password: !secret mysql_exporter_password)',
        ),
    },
  ],
  tasks(ctx) {
    const list = exporters(ctx);
    const certificateTasks = certificateMetricsTasks(ctx);
    // One apt run for all of this host's exporters (and openssl, which the certificate metrics read
    // with): each run costs seconds of dpkg overhead.
    const packages = [...list.map((e) => e.unit), ...(certificateTasks.length ? ['openssl'] : [])];
    return [...list.flatMap((e) => e.beforeInstall ?? []), apt('install the exporters', { packages }), ...list.flatMap(exporterTasks), ...certificateTasks];
  },
  // The reload first: a restart after a new drop-in must read it.
  handlers: () => [
    command(DAEMON_RELOAD, { cmd: 'systemctl daemon-reload' }),
    ...UNITS.map((u) => service(`restart ${u}`, { name: u, state: 'restarted' })),
    certificateMetricsHandler(),
  ],
});
