import { z } from 'zod';
import { Secret } from '../../util/secrets.js';
import { defineRole, problemIf, withRules } from '../define.js';
import { privateAddress, verifyUnitAs } from '../shared.js';
import { pick, shared, wholeNumber } from '../vars.js';
import { command, copy, file, service, template } from '../../modules/tasks.js';
import { sh } from '../../util/quote.js';

/** The agent's files on a database host. */
export const DB_HEALTH_SCRIPT = '/usr/local/lib/provision/db-health-agent';
export const DB_HEALTH_CREDENTIALS = '/etc/provision/db-health.cnf';
export const DB_HEALTH_UNIT = 'provision-db-health.service';
const RESTART = 'restart the health agent';
/**
 * What earlier versions installed: a socket (Accept=yes) starting one sandboxed unit per check. Removed
 * on converge: it holds the agent's port, and each of its checks cost a unit start and two client runs.
 */
export const FORMER_AGENT_UNITS = ['/etc/systemd/system/provision-db-health.socket', '/etc/systemd/system/provision-db-health@.service'] as const;

/** The paths the agent answers (db_endpoint checks them). */
export const HEALTH_PATHS = { write: '/write', read: '/read' } as const;

const vars = withRules(
  z.object({
    ...pick('db_health_port', 'mysql_exporter_user'),
    private_address: shared('private_address', 'Where the agent listens (the web servers check it there).'),
    mysql_exporter_password: shared('mysql_exporter_password', "The monitoring account's password: the agent logs in with it (required)."),
    db_read_max_lag: wholeNumber(0, undefined, 'a whole number of seconds ≥ 0')
      .default(30)
      .describe("A replica lagging more than this many seconds behind its primary fails the read check: the endpoints' reads go to the other replicas, or to the primary when none is fit."),
    db_health_poll_interval: wholeNumber(50, 5000, 'a whole number of milliseconds from 50 to 5000')
      .default(250)
      .describe("Milliseconds between two reads of the local server's state by the agent (one persistent connection, three queries)."),
    db_health_max_age: wholeNumber(200, 60000, 'a whole number of milliseconds from 200 to 60000')
      .default(2000)
      .describe("A state older than this many milliseconds (the server hangs, or does not answer) fails both checks: the agent fails closed."),
  }),
  [
    {
      says: '`mysql_exporter_password` is required (a `!secret`): the agent logs in with the monitoring account.',
      check: (v) => problemIf(!(v.mysql_exporter_password instanceof Secret), 'mysql_exporter_password', 'required, as a !secret (the health agent logs in with it)'),
    },
    {
      says: '`db_health_max_age` is at least twice `db_health_poll_interval` (one late answer is not yet a failure).',
      check: (v) =>
        problemIf(
          v.db_health_max_age < 2 * v.db_health_poll_interval,
          'db_health_max_age',
          `${v.db_health_max_age} ms is less than twice db_health_poll_interval (${v.db_health_poll_interval} ms): every poll would be late`,
        ),
    },
  ],
);

export const role = defineRole({
  name: 'db_health',
  description:
    "The database hosts' health agent, which the web servers' database endpoint (db_endpoint role) checks: one long-running " +
    `process per host (${DB_HEALTH_UNIT}, perl-base only) on \`private_address:db_health_port\`. It keeps one connection to the ` +
    'local server (the monitoring account `mysql_exporter_user`, read-only privileges), reads its state every `db_health_poll_interval` ms ' +
    'and answers each HTTP check from the latest state, without a process per check: `GET /write` 200 only on a writable server that ' +
    'replicates from nobody (the primary); `GET /read` 200 only on a replica with both threads running and a lag of at most ' +
    '`db_read_max_lag` seconds; 503 otherwise, and 503 for both when its state is older than `db_health_max_age` ms (fail closed). ' +
    "No account of its own on the host (systemd's DynamicUser; the login from its credential store); restarted by systemd; " +
    'one journal line when an answer changes, none per check. The firewall opens the port to the web servers only. ' +
    'The per-check socket units of earlier versions are removed.',
  vars,
  tasks(ctx) {
    const v = ctx.vars;
    const unitVars = {
      ...v,
      private_ip: privateAddress(ctx.host),
      script: DB_HEALTH_SCRIPT,
      credentials: DB_HEALTH_CREDENTIALS,
      poll_ms: v.db_health_poll_interval,
      max_age_ms: v.db_health_max_age,
    };
    const [formerSocket, formerTemplate] = FORMER_AGENT_UNITS;
    return [
      // Before the agent starts: the former socket listens on its port. In-flight checks of it end on their own.
      command('former per-check agent units removed (socket and template)', {
        cmd: sh`systemctl disable --now provision-db-health.socket >/dev/null 2>&1; rm -f ${formerSocket} ${formerTemplate} && systemctl daemon-reload && { systemctl reset-failed 'provision-db-health@*' >/dev/null 2>&1 || true; }`,
        onlyif: sh`test -e ${formerSocket} || test -e ${formerTemplate}`,
      }),
      file('agent folder', { path: '/usr/local/lib/provision', state: 'directory', mode: '0755', owner: 'root', group: 'root' }),
      copy('health agent', { src: ctx.file('files/db-health-agent.pl'), dest: DB_HEALTH_SCRIPT, mode: '0755', owner: 'root', group: 'root', validate: 'perl -c %s' }, { notify: RESTART }),
      template(
        "health agent's database login",
        { src: ctx.file('templates/client.cnf.njk'), dest: DB_HEALTH_CREDENTIALS, mode: '0600', owner: 'root', group: 'root', make_parents: true, sensitive: true, vars: v },
        // The agent reads it at start (its credential copy is made then).
        { notify: RESTART },
      ),
      template(
        `systemd unit ${DB_HEALTH_UNIT}`,
        {
          src: ctx.file('templates/db-health.service.njk'),
          dest: `/etc/systemd/system/${DB_HEALTH_UNIT}`,
          mode: '0644',
          validate: verifyUnitAs(DB_HEALTH_UNIT),
          vars: unitVars,
        },
        { notify: RESTART },
      ),
      service(`${DB_HEALTH_UNIT} running and enabled`, { name: DB_HEALTH_UNIT, state: 'started', enabled: true, daemon_reload: true }),
    ];
  },
  handlers: () => [service(RESTART, { name: DB_HEALTH_UNIT, state: 'restarted', daemon_reload: true })],
});
