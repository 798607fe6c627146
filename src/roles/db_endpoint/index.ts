import { z } from 'zod';
import { defineRole, problemIf } from '../define.js';
import { GROUPS, privateAddress, verifyUnitAs } from '../shared.js';
import { HEALTH_PATHS } from '../db_health/index.js';
import { pick, shared, wholeNumber } from '../vars.js';
import { apt, file, service, template } from '../../modules/tasks.js';

/**
 * Where the app reaches the databases on a web server: two loopback addresses at `mysql_port`, so that
 * DB_PORT stays one port. A database server on the same host (the 3-host topology) binds its private
 * address (mysql_bind_address ""), never these: the two never compete for the port.
 */
export const DB_ENDPOINT_WRITE_ADDRESS = '127.0.0.2';
export const DB_ENDPOINT_READ_ADDRESS = '127.0.0.3';
export const DB_ENDPOINT_UNIT = 'provision-db-endpoint';
export const DB_ENDPOINT_CONFIG = '/etc/provision/db-endpoint/haproxy.cfg';
export const DB_ENDPOINT_ADMIN_SOCKET = `/run/${DB_ENDPOINT_UNIT}/admin.sock`;
const RELOAD = 'reload the database endpoint';

/** Binds that would take the endpoint's port on its addresses (any address, or loopback). */
function takesEndpointPort(bind: string): boolean {
  return ['0.0.0.0', '::', '*', DB_ENDPOINT_WRITE_ADDRESS, DB_ENDPOINT_READ_ADDRESS].includes(bind) || bind.startsWith('127.');
}

const vars = z.object({
    ...pick('mysql_port', 'db_health_port', 'db_endpoint'),
    private_address: shared('private_address', 'The address the endpoint connects from (the servers know the app by it).'),
    mysql_bind_address: shared('mysql_bind_address', "The mysql role's bind address, read here only to refuse one that would take the endpoint's port on a host that is both (any address, loopback)."),
    db_endpoint_check_interval: wholeNumber(100, 60000, 'a whole number of milliseconds from 100 to 60000')
      .default(1000)
      .describe("Milliseconds between two checks of a database server's agent while its state holds (up and passing)."),
    db_endpoint_fast_interval: wholeNumber(100, 60000, 'a whole number of milliseconds from 100 to 60000')
      .default(250)
      .describe("Milliseconds between two checks of a server that is out, or changing state (HAProxy's downinter and fastinter): how soon a new primary is found. The agent answers from memory, so a check costs it no process."),
    db_endpoint_fall: wholeNumber(1, 10, 'a whole number from 1 to 10').default(2).describe('Failed checks in a row before a server is out (its sessions are cut).'),
    db_endpoint_rise: wholeNumber(1, 10, 'a whole number from 1 to 10').default(2).describe('Good checks in a row before a server is in.'),
  db_endpoint_maxconn: wholeNumber(1, undefined, 'a whole number ≥ 1').default(1024).describe("The endpoint's connection limit."),
});

export const role = defineRole({
  name: 'db_endpoint',
  description:
    "Each web server's database endpoint: HAProxy in TCP mode under a unit of its own (`provision-db-endpoint.service`, its config in " +
    '`/etc/provision/db-endpoint/`, never the load balancer\'s `haproxy.service`), listening on loopback only: writes on ' +
    `\`${DB_ENDPOINT_WRITE_ADDRESS}:mysql_port\` go to the one server whose health agent (db_health role) says writable, reads on ` +
    `\`${DB_ENDPOINT_READ_ADDRESS}:mysql_port\` to the replicas fit to read from, else to the primary. The app role points ` +
    "DB_WRITE_HOST/DB_READ_HOST here (with `db_endpoint: true`, the default), so after `provision db switchover` or a failover " +
    'the app follows the new writer within a bounded time, with no change to its configuration. A no-op with `db_endpoint: false` or no database hosts.',
  vars,
  hostRules: [
    {
      says: `On a host that is also a database host, \`mysql_bind_address\` is not an any-address or loopback (the endpoint listens on ${DB_ENDPOINT_WRITE_ADDRESS} and ${DB_ENDPOINT_READ_ADDRESS} at the same port).`,
      check: (v, host) =>
        problemIf(
          v.db_endpoint && host.groups.includes(GROUPS.databases) && takesEndpointPort(v.mysql_bind_address),
          'mysql_bind_address',
          `"${v.mysql_bind_address}" takes port ${v.mysql_port} on ${DB_ENDPOINT_WRITE_ADDRESS}/${DB_ENDPOINT_READ_ADDRESS}, where this web server's database endpoint listens: leave it "" (the private address)`,
        ),
    },
  ],
  tasks(ctx) {
    const v = ctx.vars;
    const servers = ctx.hostsIn(GROUPS.databases).map((h) => ({ name: h.name, address: privateAddress(h) }));
    if (!v.db_endpoint || servers.length === 0) return [];
    const isLoadBalancer = ctx.host.groups.includes(GROUPS.loadbalancers);
    const templateVars = {
      ...v,
      servers,
      private_ip: privateAddress(ctx.host),
      write_address: DB_ENDPOINT_WRITE_ADDRESS,
      read_address: DB_ENDPOINT_READ_ADDRESS,
      write_path: HEALTH_PATHS.write,
      read_path: HEALTH_PATHS.read,
      interval: v.db_endpoint_check_interval,
      fast_interval: v.db_endpoint_fast_interval,
      fall: v.db_endpoint_fall,
      rise: v.db_endpoint_rise,
      maxconn: v.db_endpoint_maxconn,
      admin_socket: DB_ENDPOINT_ADMIN_SOCKET,
      config: DB_ENDPOINT_CONFIG,
      unit_name: DB_ENDPOINT_UNIT,
    };
    const unitFile = `/etc/systemd/system/${DB_ENDPOINT_UNIT}.service`;
    return [
      apt('install haproxy', { packages: ['haproxy'] }),
      // The package starts its own haproxy.service (an empty default config): not wanted on a web server
      // that is no load balancer. On one that is, the haproxy role owns it.
      ...(isLoadBalancer ? [] : [service('the packaged haproxy.service stopped and disabled (no load balancer here)', { name: 'haproxy', state: 'stopped', enabled: false })]),
      file('endpoint config folder', { path: '/etc/provision/db-endpoint', state: 'directory', mode: '0755', owner: 'root', group: 'root' }),
      template(`endpoint config ${DB_ENDPOINT_CONFIG}`, { src: ctx.file('templates/haproxy.cfg.njk'), dest: DB_ENDPOINT_CONFIG, mode: '0644', vars: templateVars, validate: 'haproxy -c -q -f %s' }, { notify: RELOAD }),
      template(
        `systemd unit ${DB_ENDPOINT_UNIT}.service`,
        {
          src: ctx.file('templates/db-endpoint.service.njk'),
          dest: unitFile,
          mode: '0644',
          validate: verifyUnitAs(`${DB_ENDPOINT_UNIT}.service`),
          vars: templateVars,
        },
        { notify: RELOAD },
      ),
      service(`${DB_ENDPOINT_UNIT} running and enabled`, { name: DB_ENDPOINT_UNIT, state: 'started', enabled: true, daemon_reload: true }),
    ];
  },
  handlers: () => [service(RELOAD, { name: DB_ENDPOINT_UNIT, state: 'reloaded', daemon_reload: true })],
});
