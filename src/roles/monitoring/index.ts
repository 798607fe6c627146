import { type Task } from '../../modules/index.js';
import { quote } from '../../util/quote.js';
import { Secret } from '../../util/secrets.js';
import { GROUPS, inGroup, privateAddress, SHARED_DEFAULTS } from '../shared.js';
import type { RoleContext, RoleDef } from '../types.js';
import { apt, command, service, template } from '../../modules/tasks.js';

interface Exporter {
  /** Debian package = systemd unit. */
  unit: string;
  /** Everything the unit reads besides its package's files, each written before the unit is (re)started. */
  files: Task[];
  /** Where its package leaves the unit after installing it (the mysqld exporter cannot start without credentials). */
  afterInstall?: 'started' | 'stopped';
}

/**
 * One exporter (installed with the others just before): write its files (each change notifies a restart), then make sure it runs.
 * A unit that crashed before its config existed (the package starts it at install) sits in
 * "failed", possibly with its start limit hit: that is cleared before the start, so the exporter
 * ends up running even when the files were already right (an earlier run that failed midway).
 */
function exporterTasks(e: Exporter): Task[] {
  const u = quote(e.unit);
  return [
    ...e.files,
    // A unit its package leaves failed (it cannot start unconfigured) is predicted failed where it is not
    // installed yet; the others are predicted healthy.
    e.afterInstall === 'stopped'
      ? command(`clear a failed ${e.unit} (start limit)`, { cmd: `systemctl reset-failed ${u}`, unless: `systemctl cat ${u} >/dev/null 2>&1 && ! systemctl is-failed --quiet ${u}` })
      : command(`clear a failed ${e.unit} (start limit)`, { cmd: `systemctl reset-failed ${u}`, onlyif: `systemctl is-failed --quiet ${u}` }),
    service(`${e.unit} runs and starts at boot`, { name: e.unit, state: 'started', enabled: true, after_install: e.afterInstall }),
  ];
}

function defaultsFile(ctx: RoleContext, unit: string, args: string[]): Task {
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

function exporters(ctx: RoleContext): Exporter[] {
  const v = ctx.vars;
  const addr = privateAddress(ctx.host);
  const listen = (port: string) => `${addr.includes(':') ? `[${addr}]` : addr}:${v[port] as number}`;
  const list: Exporter[] = [
    {
      unit: 'prometheus-node-exporter',
      files: [defaultsFile(ctx, 'prometheus-node-exporter', [`--web.listen-address=${listen('node_exporter_port')}`, ...(v.node_exporter_extra_args as string[])])],
    },
  ];
  if (inGroup(ctx, GROUPS.webservers)) {
    list.push({
      unit: 'prometheus-nginx-exporter',
      files: [
        defaultsFile(ctx, 'prometheus-nginx-exporter', [
          `-nginx.scrape-uri=http://127.0.0.1:${v.nginx_status_port as number}/stub_status`,
          `-web.listen-address=${listen('nginx_exporter_port')}`,
          // Nginx reloading or restarting must not leave the exporter exited for good.
          `-nginx.retries=${v.nginx_exporter_retries as number}`,
        ]),
      ],
    });
  }
  if (inGroup(ctx, GROUPS.databases)) {
    const cnf = v.mysqld_exporter_my_cnf as string;
    list.push({
      unit: 'prometheus-mysqld-exporter',
      afterInstall: 'stopped',
      files: [
        template('mysqld exporter credentials', {
          src: ctx.file('templates/mysqld-exporter.cnf.njk'),
          dest: cnf,
          mode: '0600',
          owner: v.exporter_system_user as string,
          group: v.exporter_system_user as string,
          make_parents: true,
          sensitive: true,
          vars: v,
        }, { notify: 'restart prometheus-mysqld-exporter' }),
        defaultsFile(ctx, 'prometheus-mysqld-exporter', [`--config.my-cnf=${cnf}`, `--web.listen-address=${listen('mysqld_exporter_port')}`]),
      ],
    });
  }
  // Load balancers: HAProxy serves its own metrics (configured by the haproxy role); nothing to add.
  return list;
}

const UNITS = ['prometheus-node-exporter', 'prometheus-nginx-exporter', 'prometheus-mysqld-exporter'];

export const role: RoleDef = {
  name: 'monitoring',
  description: "Prometheus exporters on the host's private address: node everywhere, Nginx on web servers, MySQL on databases",
  defaults: {
    private_address: SHARED_DEFAULTS.private_address,
    node_exporter_port: SHARED_DEFAULTS.node_exporter_port,
    nginx_exporter_port: SHARED_DEFAULTS.nginx_exporter_port,
    mysqld_exporter_port: SHARED_DEFAULTS.mysqld_exporter_port,
    nginx_status_port: SHARED_DEFAULTS.nginx_status_port,
    mysql_exporter_user: SHARED_DEFAULTS.mysql_exporter_user,
    /** A Secret (`!secret mysql_exporter_password`); required on database hosts. */
    mysql_exporter_password: undefined,
    /** The server's local socket: the exporter never needs TCP to MySQL. */
    mysql_socket: '/run/mysqld/mysqld.sock',
    mysqld_exporter_my_cnf: '/etc/prometheus/mysqld-exporter.cnf',
    /** The account Debian's exporter units run as (owns the credentials file). */
    exporter_system_user: 'prometheus',
    /** Extra node exporter flags, e.g. ["--collector.systemd"]. */
    node_exporter_extra_args: [],
    /** How often (5 s apart) the Nginx exporter retries stub_status at start before giving up. */
    nginx_exporter_retries: 60,
  },
  tasks(ctx) {
    const list = exporters(ctx);
    // One apt run for all of this host's exporters: each run costs seconds of dpkg overhead.
    return [apt('install the exporters', { packages: list.map((e) => e.unit) }), ...list.flatMap(exporterTasks)];
  },
  handlers: () => UNITS.map((u) => service(`restart ${u}`, { name: u, state: 'restarted' })),
  validate(vars, host) {
    const problems: string[] = [];
    for (const name of ['node_exporter_port', 'nginx_exporter_port', 'mysqld_exporter_port', 'nginx_status_port'] as const) {
      const p = vars[name];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) problems.push(`${name}: must be a port number (1-65535)`);
    }
    for (const name of ['mysql_socket', 'mysqld_exporter_my_cnf'] as const) {
      if (typeof vars[name] !== 'string' || !String(vars[name]).startsWith('/')) problems.push(`${name}: must be an absolute path`);
    }
    if (typeof vars.exporter_system_user !== 'string' || !/^[a-z_][a-z0-9_-]*$/.test(vars.exporter_system_user)) problems.push('exporter_system_user: must be a user name');
    const extra = vars.node_exporter_extra_args;
    if (!Array.isArray(extra) || extra.some((a) => typeof a !== 'string' || !/^--?[A-Za-z0-9._-]+(=[^\s"'`$\\]*)?$/.test(a))) {
      problems.push('node_exporter_extra_args: must be a list of flags like "--collector.systemd" (no spaces or quotes)');
    }
    const r = vars.nginx_exporter_retries;
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 0) problems.push('nginx_exporter_retries: must be a whole number');
    if (host.groups.includes(GROUPS.databases)) {
      if (typeof vars.mysql_exporter_user !== 'string' || !/^[A-Za-z0-9_]{1,32}$/.test(vars.mysql_exporter_user)) problems.push('mysql_exporter_user: must be a MySQL user name');
      const pw = vars.mysql_exporter_password;
      if (!(pw instanceof Secret)) {
        problems.push(`mysql_exporter_password: must be a secret (mysql_exporter_password: !secret mysql_exporter_password)${pw === undefined ? ', it is not set' : ', not a value in clear'}`);
      } else if (/[\n"\\]/.test(pw.reveal()) || pw.reveal().length === 0) {
        problems.push('mysql_exporter_password: must be non-empty, without newlines, quotes or backslashes (it goes into a my.cnf)');
      }
    }
    return problems;
  },
};
