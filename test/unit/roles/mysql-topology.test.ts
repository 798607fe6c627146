/**
 * The mysql role honours the primary recorded by `provision db switchover`: its first task is the
 * topology guard, which refuses an inventory that still names the old primary (on every database
 * host, before anything else of the role runs) and lets the updated inventory through, whose tasks
 * make the recorded primary the primary and the other host its replica.
 */
import { describe, expect, test } from 'vitest';
import type { Host } from '../../../src/inventory/index.js';
import { mysqlTopologyModule } from '../../../src/modules/mysql/topology.js';
import { databaseServiceName } from '../../../src/modules/mysql/tls.js';
import type { Task } from '../../../src/modules/index.js';
import { role } from '../../../src/roles/mysql/index.js';
import type { RoleContext } from '../../../src/roles/types.js';
import { Secret } from '../../../src/util/secrets.js';
import { debianFacts, moduleContext } from '../modules/fixtures.js';
import { problemsOf, roleVarsFor } from './helpers.js';
import { emptyPredictedState } from '../../../src/modules/contract.js';

const ADDRESS: Record<string, string> = { 'web-01': '10.88.0.11', 'web-02': '10.88.0.12' };
const VARS = {
  mysql_replication_password: new Secret('mysql_replication_password', 'Repl-Passw0rd-2024'),
  mysql_app_password: new Secret('mysql_app_password', 'App-Passw0rd-20241'),
  mysql_exporter_password: new Secret('mysql_exporter_password', 'Exp-Passw0rd-20241'),
};
/** What `db switchover --to web-02` wrote on both hosts. */
const RECORD = JSON.stringify({ primary: 'web-02', address: '10.88.0.12', since: '2026-11-27T23:00:00.000Z', by: 'provision db switchover' });

function site(primary: string): Map<string, Host> {
  return new Map(
    Object.keys(ADDRESS).map((name) => [
      name,
      {
        name,
        address: ADDRESS[name]!,
        groups: ['all', 'webservers', name === primary ? 'db_primary' : 'db_replica'],
        vars: VARS,
        connection: { user: 'root', port: 22, knownHosts: '/dev/null', acceptNewHostKeys: false, become: false, becomeUser: 'root', connectTimeoutMs: 10_000 },
      } satisfies Host,
    ]),
  );
}

function tasksOf(hostName: string, primary: string, vars: Record<string, unknown> = {}, inventoryName = 't'): Task[] {
  const hosts = site(primary);
  const host = hosts.get(hostName)!;
  const ctx = {
    host,
    facts: { ...debianFacts(), hostname: hostName },
    vars: roleVarsFor(role, host, { ...VARS, ...vars }),
    inventory: { name: inventoryName, file: `${inventoryName}.yml`, hosts, groups: new Map(), secrets: [] },
    hostsIn: (g: string) => [...hosts.values()].filter((h) => h.groups.includes(g)),
    file: (rel: string) => `/roles/mysql/${rel}`,
  } as unknown as RoleContext<never>;
  return role.tasks(ctx);
}

/** The guard's plan on a host whose record says `record`. */
async function guard(task: Task, record: string | undefined) {
  const params = mysqlTopologyModule.schema.parse(task.params);
  const ctx = moduleContext({
    host: site('web-01').get('web-01')!,
    facts: debianFacts(),
    check: false,
    predicted: emptyPredictedState(),
    results: new Map([['mysql:topology:record', { stdout: record ?? '@@absent\n', stderr: '', code: 0 }]]),
  } as never);
  return mysqlTopologyModule.plan(params, ctx);
}

describe('the mysql role and the recorded primary', () => {
  test('its first task, on both database hosts, is the guard with the inventory’s primary', () => {
    for (const h of ['web-01', 'web-02']) {
      const first = tasksOf(h, 'web-01')[0]!;
      expect([first.module, first.name, first.params]).toEqual(['mysql_topology', "the recorded database primary is the inventory's (web-01)", { primary: 'web-01', replicas: ['web-02'] }]);
    }
  });

  test('with web-02 recorded, the inventory naming web-01 is refused on both hosts before any other task', async () => {
    for (const h of ['web-01', 'web-02']) {
      await expect(guard(tasksOf(h, 'web-01')[0]!, RECORD)).rejects.toThrow(/web-02 \(10\.88\.0\.12\) is the primary recorded on this host.*Update the inventory: db_primary: \[web-02\], db_replica: \[web-01\]/);
    }
  });

  test('with web-02 recorded, the updated inventory passes the guard: web-02 gets the primary’s tasks, web-01 replicates from web-02', async () => {
    const onWeb02 = tasksOf('web-02', 'web-02');
    const onWeb01 = tasksOf('web-01', 'web-02');
    for (const tasks of [onWeb01, onWeb02]) expect((await guard(tasks[0]!, RECORD)).changes).toEqual([]);
    expect(onWeb02.map((t) => t.name)).toContain('replication user replicator@10.88.0.11 (web-01)');
    expect(onWeb02.some((t) => t.module === 'mysql_replication')).toBe(false);
    const replication = onWeb01.find((t) => t.module === 'mysql_replication')!;
    expect([replication.name, (replication.params as { primary_host: string }).primary_host]).toEqual(['replicate from web-02 (10.88.0.12)', '10.88.0.12']);
    expect(onWeb01.some((t) => t.module === 'mysql_db')).toBe(true); // only "no test database": the app database is the primary's
    expect(onWeb01.map((t) => t.name)).not.toContain('database app');
  });

  test('never switched over (no record): the inventory decides', async () => {
    const plan = await guard(tasksOf('web-01', 'web-01')[0]!, undefined);
    expect(plan.changes).toEqual([]);
    expect(plan.note).toBe('no primary recorded on this host: the inventory decides');
  });
});

describe('the database certificate', () => {
  test("names its host, its private address and the name every database certificate of the inventory carries (db.<inventory>.internal)", () => {
    for (const name of ['web-01', 'web-02']) {
      const leaf = tasksOf(name, 'web-01').find((t) => t.module === 'internal_tls' && (t.params as { cert_file?: string }).cert_file)!;
      expect((leaf.params as { names: string[] }).names).toEqual([name, ADDRESS[name], 'db.t.internal']);
    }
  });

  const certificateNames = (name: string, vars: Record<string, unknown>, inventoryName?: string) =>
    (tasksOf(name, 'web-01', vars, inventoryName).find((t) => t.module === 'internal_tls' && (t.params as { cert_file?: string }).cert_file)!.params as { names: string[] }).names;

  test('db_tls_name pins the shared name: an inventory renamed (or a test writing inventories under several names) keeps every certificate', () => {
    for (const inventoryName of ['prod', 'prod-renamed', 'inv-x1y2z3']) {
      expect(certificateNames('web-02', { db_tls_name: 'db.shop.internal' }, inventoryName)).toEqual(['web-02', ADDRESS['web-02'], 'db.shop.internal']);
    }
    // Unset or "": the name derived from the inventory's, as before.
    expect(certificateNames('web-02', { db_tls_name: '' }, 'prod')).toEqual(['web-02', ADDRESS['web-02'], 'db.prod.internal']);
  });

  test('db_tls_name must be a DNS name: one clear problem, naming the var', () => {
    const host = site('web-01').get('web-01')!;
    for (const bad of ['db', 'db..internal', '-db.internal', 'db.int ernal', 'db.internal/x', 7]) {
      expect(problemsOf(role, host, { ...VARS, db_tls_name: bad })).toEqual([expect.stringMatching(/^db_tls_name: a fully qualified DNS name like db\.example\.internal/)]);
    }
    expect(problemsOf(role, host, { ...VARS, db_tls_name: 'DB-1.Example.internal' })).toEqual([]);
  });

  test('the shared name is a DNS name whatever the inventory is called', () => {
    expect(databaseServiceName('prod')).toBe('db.prod.internal');
    expect(databaseServiceName('Prod_Split.v2')).toBe('db.prod-split-v2.internal');
    expect(databaseServiceName('__')).toBe('db.site.internal');
    expect(databaseServiceName('x'.repeat(80))).toBe(`db.${'x'.repeat(63)}.internal`);
  });
});
