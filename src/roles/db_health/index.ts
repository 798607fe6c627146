import { z } from 'zod';
import { Secret } from '../../util/secrets.js';
import { defineRole, problemIf, withRules } from '../define.js';
import { privateAddress } from '../shared.js';
import { pick, shared, wholeNumber } from '../vars.js';
import { copy, file, service, template } from '../../modules/tasks.js';

/** The agent's files on a database host. */
export const DB_HEALTH_SCRIPT = '/usr/local/lib/provision/db-health';
export const DB_HEALTH_CREDENTIALS = '/etc/provision/db-health.cnf';
export const DB_HEALTH_SOCKET = 'provision-db-health.socket';
const SERVICE_TEMPLATE = 'provision-db-health@.service';
const RESTART = 'restart the health agent socket';

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
  }),
  [
    {
      says: '`mysql_exporter_password` is required (a `!secret`): the agent logs in with the monitoring account.',
      check: (v) => problemIf(!(v.mysql_exporter_password instanceof Secret), 'mysql_exporter_password', 'required, as a !secret (the health agent logs in with it)'),
    },
  ],
);

export const role = defineRole({
  name: 'db_health',
  description:
    "The database hosts' health agent, which the web servers' database endpoint (db_endpoint role) checks: a socket-activated " +
    `systemd service on \`private_address:db_health_port\` (${DB_HEALTH_SOCKET}), a POSIX shell script per check that asks the local ` +
    'server over its socket with the monitoring account (`mysql_exporter_user`, read-only privileges) and answers HTTP: ' +
    '`GET /write` 200 only on a writable server that replicates from nobody (the primary); `GET /read` 200 only on a replica ' +
    'with both threads running and a lag of at most `db_read_max_lag` seconds; 503 otherwise. No daemon of its own, no account ' +
    "of its own on the host (systemd's DynamicUser; the login comes from its credential store). The firewall opens the port to the web servers only.",
  vars,
  tasks(ctx) {
    const v = ctx.vars;
    const unitVars = { ...v, private_ip: privateAddress(ctx.host), script: DB_HEALTH_SCRIPT, credentials: DB_HEALTH_CREDENTIALS };
    const unit = (name: string, src: string) =>
      template(
        `systemd unit ${name}`,
        {
          src: ctx.file(`templates/${src}`),
          dest: `/etc/systemd/system/${name}`,
          mode: '0644',
          // systemd-analyze wants the unit under its own name.
          validate: `d=$(mktemp -d) && cp %s "$d/${name}" && systemd-analyze verify "$d/${name}" >/dev/null; r=$?; rm -rf "$d"; exit $r`,
          vars: unitVars,
        },
        { notify: RESTART },
      );
    return [
      // The mysql client (mariadb-client / mysql-client) comes with the server; the agent needs nothing else.
      file('agent folder', { path: '/usr/local/lib/provision', state: 'directory', mode: '0755', owner: 'root', group: 'root' }),
      copy('health agent script', { src: ctx.file('files/db-health.sh'), dest: DB_HEALTH_SCRIPT, mode: '0755', owner: 'root', group: 'root', validate: 'sh -n %s' }),
      template(
        "health agent's database login",
        { src: ctx.file('templates/client.cnf.njk'), dest: DB_HEALTH_CREDENTIALS, mode: '0600', owner: 'root', group: 'root', make_parents: true, sensitive: true, vars: v },
      ),
      unit(SERVICE_TEMPLATE, 'db-health@.service.njk'),
      unit(DB_HEALTH_SOCKET, 'db-health.socket.njk'),
      service(`${DB_HEALTH_SOCKET} listening and enabled`, { name: DB_HEALTH_SOCKET, state: 'started', enabled: true, daemon_reload: true }),
    ];
  },
  handlers: () => [service(RESTART, { name: DB_HEALTH_SOCKET, state: 'restarted', daemon_reload: true })],
});
