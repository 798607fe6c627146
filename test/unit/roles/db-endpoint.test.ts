/**
 * The database endpoint (db_endpoint role) and the health agent (db_health role) without a host: what
 * they render for the 3-host and the split topology, the app's database addresses, the bind rule,
 * and the health agent's units (the agent itself: db-health-agent.test.ts).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import { renderTemplate, type Task } from '../../../src/modules/index.ts';
import { appEnvironment, role as appRole } from '../../../src/roles/app/index.ts';
import { role as endpointRole } from '../../../src/roles/db_endpoint/index.ts';
import { role as schemaRole } from '../../../src/roles/app_schema/index.ts';
import { role as healthRole } from '../../../src/roles/db_health/index.ts';
import type { RoleDef } from '../../../src/roles/index.ts';
import { Secret } from '../../../src/util/secrets.ts';
import { problemsOf, roleVarsFor } from './helpers.ts';

type Site = Record<string, { address: string; groups: string[] }>;
const THREE: Site = {
  'lb-01': { address: '10.9.0.10', groups: ['loadbalancers'] },
  'web-01': { address: '10.9.0.11', groups: ['webservers', 'db_primary', 'databases'] },
  'web-02': { address: '10.9.0.12', groups: ['webservers', 'db_replica', 'databases'] },
};
const SPLIT: Site = {
  'lb-01': { address: '10.9.0.10', groups: ['loadbalancers'] },
  'web-01': { address: '10.9.0.11', groups: ['webservers'] },
  'web-02': { address: '10.9.0.12', groups: ['webservers'] },
  'db-01': { address: '10.9.0.21', groups: ['db_primary', 'databases'] },
  'db-02': { address: '10.9.0.22', groups: ['db_replica', 'databases'] },
};
const SECRETS = {
  mysql_app_password: new Secret('mysql_app_password', 'App-Passw0rd-20241'),
  mysql_exporter_password: new Secret('mysql_exporter_password', 'Exp-Passw0rd-20241'),
};

const host = (site: Site, name: string): Host => ({ name, address: site[name]!.address, groups: ['all', ...site[name]!.groups], vars: {}, connection: {} }) as unknown as Host;

function expand(r: RoleDef, site: Site, name: string, vars: Record<string, unknown> = {}): Task[] {
  const h = host(site, name);
  return r.tasks({
    host: h,
    facts: { os: { family: 'debian' }, hostname: name } as unknown as Facts,
    vars: roleVarsFor(r, h, { ...SECRETS, ...vars }),
    // The app role's database-CA task names the inventory's PKI folder, derived from its file.
    inventory: { name: 'unit', file: '/srv/site/unit.yml' } as unknown as Inventory,
    hostsIn: (g) => Object.keys(site).filter((n) => site[n]!.groups.includes(g)).map((n) => host(site, n)),
    file: (rel) => path.resolve(import.meta.dirname, '../../../src/roles', r.name, rel),
  });
}

function rendered(tasks: Task[], dest: string): string {
  const t = tasks.find((x) => x.module === 'template' && (x.params as { dest: string }).dest === dest);
  if (!t) throw new Error(`no template for ${dest}`);
  const p = t.params as { src: string; vars?: Record<string, unknown> };
  return renderTemplate(p.src, p.vars ?? {});
}

const CONFIG = '/etc/provision/db-endpoint/haproxy.cfg';

describe('db_endpoint role', () => {
  it('listens on loopback only (writes 127.0.0.2, reads 127.0.0.3, one port), checks each server on its agent, cuts the sessions of a server marked out', () => {
    const cfg = rendered(expand(endpointRole, SPLIT, 'web-01'), CONFIG);
    expect([...cfg.matchAll(/^\s+bind (\S+)$/gm)].map((m) => m[1])).toEqual(['127.0.0.2:3306', '127.0.0.3:3306']);
    expect(cfg).toContain('default-server inter 1000ms fastinter 250ms downinter 250ms fall 2 rise 2 on-marked-down shutdown-sessions');
    expect(cfg).toContain('source 10.9.0.11');
    const write = cfg.slice(cfg.indexOf('listen db_write'), cfg.indexOf('frontend db_read'));
    expect(write).toContain('balance first');
    expect(write).toContain('http-check send meth GET uri /write ver HTTP/1.0');
    expect([...write.matchAll(/^\s+server (.*)$/gm)].map((m) => m[1])).toEqual(['db-01 10.9.0.21:3306 check port 9200', 'db-02 10.9.0.22:3306 check port 9200']);
    const read = cfg.slice(cfg.indexOf('frontend db_read'));
    expect(read).toContain('use_backend db_replicas if { nbsrv(db_replicas) gt 0 }');
    expect(read).toContain('default_backend db_write');
    expect(read).toContain('uri /read ver');
  });

  it('runs under a unit of its own, never the load balancer\'s haproxy.service; stops the packaged one only where no load balancer runs', () => {
    const web = expand(endpointRole, SPLIT, 'web-01');
    const unit = rendered(web, '/etc/systemd/system/provision-db-endpoint.service');
    expect(unit).toContain('ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE');
    expect(unit).toContain('CONFIG=/etc/provision/db-endpoint/haproxy.cfg');
    expect(web.map((t) => t.name)).toContain('the packaged haproxy.service stopped and disabled (no load balancer here)');
    const both = { ...SPLIT, 'web-01': { address: '10.9.0.11', groups: ['webservers', 'loadbalancers'] } };
    expect(expand(endpointRole, both, 'web-01').some((t) => (t.params as { name?: string }).name === 'haproxy')).toBe(false);
  });

  it('is a no-op with db_endpoint: false or without database hosts', () => {
    expect(expand(endpointRole, SPLIT, 'web-01', { db_endpoint: false })).toEqual([]);
    expect(expand(endpointRole, { 'web-01': SPLIT['web-01']! }, 'web-01')).toEqual([]);
  });

  it('refuses a database bind that would take the endpoint\'s port on a host that is both (3-host topology); the private address is fine', () => {
    const web1 = host(THREE, 'web-01');
    expect(problemsOf(endpointRole, web1, { mysql_bind_address: '0.0.0.0' })).toEqual([
      'mysql_bind_address: "0.0.0.0" takes port 3306 on 127.0.0.2/127.0.0.3, where this web server\'s database endpoint listens: leave it "" (the private address)',
    ]);
    expect(problemsOf(endpointRole, web1, { mysql_bind_address: '127.0.0.1' })).toHaveLength(1);
    expect(problemsOf(endpointRole, web1, { mysql_bind_address: '' })).toEqual([]);
    expect(problemsOf(endpointRole, web1, { mysql_bind_address: '10.9.0.11' })).toEqual([]);
    expect(problemsOf(endpointRole, host(SPLIT, 'web-01'), { mysql_bind_address: '0.0.0.0' })).toEqual([]);
  });
});

describe('the app follows the endpoint', () => {
  const dbEnv = (site: Site, name: string, vars: Record<string, unknown> = {}) => {
    const h = host(site, name);
    const env = appEnvironment({
      host: h,
      facts: {} as Facts,
      vars: roleVarsFor(appRole, h, { ...SECRETS, ...vars }),
      inventory: {} as Inventory,
      hostsIn: (g) => Object.keys(site).filter((n) => site[n]!.groups.includes(g)).map((n) => host(site, n)),
      file: (rel) => rel,
    } as Parameters<typeof appEnvironment>[0]);
    return Object.fromEntries(env.filter(([k]) => ['DB_WRITE_HOST', 'DB_READ_HOST', 'DB_PORT'].includes(k)));
  };

  it('DB_WRITE_HOST/DB_READ_HOST are the endpoint\'s loopback addresses, in both topologies, DB_PORT the one port', () => {
    for (const [site, name] of [[SPLIT, 'web-02'], [THREE, 'web-01'], [THREE, 'web-02']] as const) {
      expect(dbEnv(site, name)).toEqual({ DB_WRITE_HOST: '127.0.0.2', DB_READ_HOST: '127.0.0.3', DB_PORT: '3306' });
    }
  });

  it('without the endpoint: the primary and the local database as before; explicit hosts win', () => {
    expect(dbEnv(THREE, 'web-02', { db_endpoint: false })).toEqual({ DB_WRITE_HOST: '10.9.0.11', DB_READ_HOST: '10.9.0.12', DB_PORT: '3306' });
    expect(dbEnv(SPLIT, 'web-02', { db_endpoint: false })).toEqual({ DB_WRITE_HOST: '10.9.0.21', DB_READ_HOST: '10.9.0.21', DB_PORT: '3306' });
    expect(dbEnv(SPLIT, 'web-02', { app_db_write_host: 'db.internal' })).toMatchObject({ DB_WRITE_HOST: 'db.internal', DB_READ_HOST: '127.0.0.3' });
    expect(dbEnv({ 'web-01': SPLIT['web-01']! }, 'web-01')).toEqual({});
  });
});

describe('app_schema role', () => {
  it('is the one owner of the schema: on the primary in both topologies; the app role makes none, not even on a primary that is a web server', () => {
    for (const [site, primary] of [[SPLIT, 'db-01'], [THREE, 'web-01']] as const) {
      const [task, ...rest] = expand(schemaRole, site, primary);
      expect(rest).toEqual([]);
      expect(task!.module).toBe('mysql_query');
      expect(task!.name).toBe('schema of database app (visits, notes)');
      expect((task!.params as { sql: string }).sql).toMatch(/CREATE TABLE IF NOT EXISTS visits/);
    }
    // Two owners on a 3-host primary: the plan of a fresh site listed the schema twice, the run made it once.
    for (const name of ['web-01', 'web-02']) expect(expand(appRole, THREE, name).filter((t) => t.module === 'mysql_query')).toEqual([]);
    expect(expand(appRole, SPLIT, 'web-01').filter((t) => t.module === 'mysql_query')).toEqual([]);
  });

  it('plays on db_primary in the site playbook, before the web servers (the app starts on its tables)', () => {
    const plays = parse(readFileSync(path.resolve(import.meta.dirname, '../../../playbooks/site.yml'), 'utf8')) as Array<{ hosts: string; roles: string[] }>;
    const schema = plays.findIndex((p) => p.roles.includes('app_schema'));
    const web = plays.findIndex((p) => p.roles.includes('app'));
    expect(plays[schema]!.hosts).toBe('db_primary');
    expect(schema).toBeGreaterThan(plays.findIndex((p) => p.hosts === 'db_primary' && p.roles.includes('mysql')));
    expect(schema).toBeLessThan(web);
  });
});

describe('db_health role', () => {
  it('one long-running agent on the private address (a service, no socket, no unit per check), no account of its own, least privilege; its login 0600 and never diffed', () => {
    const tasks = expand(healthRole, SPLIT, 'db-01');
    const dests = tasks.map((t) => (t.params as { dest?: string }).dest).filter(Boolean);
    expect(dests).toEqual(['/usr/local/lib/provision/db-health-agent', '/etc/provision/db-health.cnf', '/etc/systemd/system/provision-db-health.service']);
    const unit = rendered(tasks, '/etc/systemd/system/provision-db-health.service');
    expect(unit).toContain(
      'ExecStart=/usr/bin/perl /usr/local/lib/provision/db-health-agent --listen 10.9.0.21 --port 9200 --max-lag 30 --poll-ms 250 --max-age-ms 2000 --client-config %d/client.cnf\n',
    );
    for (const line of ['Restart=always', 'StartLimitIntervalSec=0', 'DynamicUser=yes', 'LoadCredential=client.cnf:/etc/provision/db-health.cnf', 'NoNewPrivileges=yes', 'CapabilityBoundingSet=', 'ProtectSystem=strict', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX']) {
      expect(unit).toContain(`${line}\n`);
    }
    expect(unit).not.toMatch(/Accept=|StandardInput=socket|User=root/);
    expect(tasks.find((t) => t.module === 'service')!.params).toMatchObject({ name: 'provision-db-health.service', state: 'started', enabled: true });
    // The agent is restarted when its program, login or unit changes (it reads them at start).
    for (const dest of dests) expect(tasks.find((t) => (t.params as { dest?: string }).dest === dest)!.notify).toEqual(['restart the health agent']);
    const login = tasks.find((t) => (t.params as { dest?: string }).dest === '/etc/provision/db-health.cnf')!.params as { mode: string; sensitive: boolean };
    expect([login.mode, login.sensitive]).toEqual(['0600', true]);
    expect(rendered(tasks, '/etc/provision/db-health.cnf')).toContain('user=exporter\npassword="Exp-Passw0rd-20241"');
    expect(problemsOf(healthRole, host(SPLIT, 'db-01'), {})).toEqual(['mysql_exporter_password: required, as a !secret (the health agent logs in with it)']);
  });

  it('removes the per-check socket and template units of earlier versions first, only when they are there (idempotent)', () => {
    const [first] = expand(healthRole, SPLIT, 'db-01');
    expect(first!.module).toBe('command');
    const p = first!.params as { cmd: string; onlyif: string };
    expect(p.onlyif).toBe("test -e /etc/systemd/system/provision-db-health.socket || test -e /etc/systemd/system/provision-db-health@.service");
    expect(p.cmd).toContain('systemctl disable --now provision-db-health.socket');
    expect(p.cmd).toContain('rm -f /etc/systemd/system/provision-db-health.socket /etc/systemd/system/provision-db-health@.service && systemctl daemon-reload');
  });

  it('poll interval and staleness bound: rendered, and a bound under two polls refused', () => {
    const unit = rendered(expand(healthRole, SPLIT, 'db-02', { db_health_poll_interval: 100, db_health_max_age: 1000, db_read_max_lag: 5 }), '/etc/systemd/system/provision-db-health.service');
    expect(unit).toContain('--listen 10.9.0.22 --port 9200 --max-lag 5 --poll-ms 100 --max-age-ms 1000 ');
    expect(problemsOf(healthRole, host(SPLIT, 'db-01'), { ...SECRETS, db_health_poll_interval: 1000, db_health_max_age: 1500 })).toEqual([
      'db_health_max_age: 1500 ms is less than twice db_health_poll_interval (1000 ms): every poll would be late',
    ]);
  });
});
