/**
 * A MariaDB replica's first setup on real lab hosts (instance `my`, 10.94.0.0/24, web-01 primary,
 * web-02 replica), with only what MariaDB needs: the mysql role, as the site runs it (one play for
 * db_primary, then one for db_replica). MariaDB is installed once (snapshot `mariadb`); the primary
 * with data and purged binary logs is built once, before the tests. Each test restores the
 * replica it starts from (3 starts from the former primary that 2 built and kept as a snapshot).
 *
 *   1. a primary whose early binary logs are purged still gets a complete replica (seeded from a
 *      dump streamed over SSH): CHECKSUM TABLE equal on both, replication running;
 *   2. a host with its own data and GTID position put in db_replica is refused, its data untouched;
 *   3. with mysql_replica_reinitialize: true that host is re-seeded, checksums equal, replicating;
 *   4. accounts the role made for an address that left the inventory are dropped (on the primary
 *      and, replicated, on the replica); an account made by hand is untouched.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp, restoreHost, snapshotHost } from '../../src/lab/index.ts';
import { changedTasks, provision, type CliResult } from '../e2e/lab-env.ts';
import { LAB_DB_TLS_NAME, shareCa } from './db-helpers.ts';
import { failures, pollUntil, taskResult, writeInventory } from './faults-helpers.ts';

const NAME = 'my';
const SUBNET = '10.94.0';
const PRIMARY = 'web-01';
const REPLICA = 'web-02';
const REPLICATION_TASK = `replicate from ${PRIMARY} (${SUBNET}.11)`;
const ACCOUNTS_TASK = 'accounts this role made that the inventory no longer calls for dropped';
const env = {
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'Repl-Passw0rd-2024',
  PROVISION_SECRET_MYSQL_APP_PASSWORD: 'App-Passw0rd-20241',
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'Exp-Passw0rd-20241',
};
/** Every run of the CLI is bounded: a hang fails the test instead of stalling the suite. */
const RUN_BOUND_MS = 300_000;
let dir: string;

const PRIMARY_PLAY = `
- name: MySQL primary
  hosts: db_primary
  roles: [mysql]
`;
const PLAYBOOK = `${PRIMARY_PLAY}- name: MySQL replica
  hosts: db_replica
  roles: [mysql]
`;

/** An inventory of the lab's hosts; `hosts` are the lines under hosts:. */
function inventory(hosts: string): string {
  return writeInventory(dir, NAME, SUBNET, {
    hosts,
    tail: `vars:
  mysql_replication_password: !secret mysql_replication_password
  mysql_app_password: !secret mysql_app_password
  mysql_exporter_password: !secret mysql_exporter_password
  mysql_replication_verify_timeout: 30
  db_tls_name: ${LAB_DB_TLS_NAME}
`,
  });
}

const PRIMARY_LINE = `  ${PRIMARY}: { address: ${SUBNET}.11, groups: [webservers, db_primary] }\n`;
const replicaLine = (vars = '') => `  ${REPLICA}: { address: ${SUBNET}.12, groups: [webservers, db_replica]${vars ? `, vars: { ${vars} }` : ''} }\n`;
const pair = (replicaVars = '', extra = '') => inventory(PRIMARY_LINE + replicaLine(replicaVars) + extra);

function run(inv: string, playbook: string, ...extra: string[]): Promise<CliResult> {
  // Each inventory here is a new file: they share the first one's CA and name its certificates alike (LAB_DB_TLS_NAME),
  // or each converge would re-issue every certificate.
  shareCa(dir, inv);
  const pb = path.join(dir, `play-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(pb, playbook);
  return provision(['-i', inv, '-p', pb, '--json', ...extra], { env, timeoutMs: RUN_BOUND_MS });
}
const converge = (inv: string, ...extra: string[]) => run(inv, PLAYBOOK, ...extra);

/** A run that must succeed: no failed task, exit 0 or 2. */
function expectSuccess(r: CliResult): void {
  expect(failures(r), r.stdout + r.stderr).toEqual([]);
  expect([0, 2], r.stdout + r.stderr).toContain(r.code);
}

/** SQL through the host's own client (root over the socket); the rows as text. */
async function sql(host: string, query: string): Promise<string> {
  const r = await hostExec(host, ['sh', '-c', `mysql --batch --skip-column-names <<'EOF'\n${query}\nEOF`], NAME, { timeoutMs: 60_000 });
  expect(r.code, `${host}: ${query}\n${r.stderr}`).toBe(0);
  return r.stdout.trim();
}

async function slaveStatus(host: string): Promise<Record<string, string>> {
  const r = await hostExec(host, ['mysql', '--batch', '-e', 'SHOW SLAVE STATUS'], NAME);
  const [header, values] = r.stdout.trim().split('\n');
  if (!header || !values) return {};
  const v = values.split('\t');
  return Object.fromEntries(header.split('\t').map((k, i) => [k, v[i] ?? '']));
}

/** The application tables' checksums on a host, once its applied position is the primary's (polled, bounded). */
async function checksumsWhenCaughtUp(tables: string[]): Promise<{ primary: string; replica: string }> {
  const target = await sql(PRIMARY, 'SELECT @@gtid_binlog_pos');
  const reached = await pollUntil(async () => (await sql(REPLICA, 'SELECT @@gtid_slave_pos')) === target, 30_000, 500);
  expect(reached, `the replica reaches ${target}`).toBe(true);
  const q = `CHECKSUM TABLE ${tables.join(', ')}`;
  return { primary: await sql(PRIMARY, q), replica: await sql(REPLICA, q) };
}

const APP_TABLES = ['app.notes', 'shop.orders'];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-my-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: [PRIMARY, REPLICA], pebble: false });
  // MariaDB installed once (apt through the lab proxy), kept as the starting point of every test.
  const pb = path.join(dir, 'install.yml');
  writeFileSync(pb, '- name: MariaDB installed\n  hosts: all\n  tasks:\n    - name: mariadb-server\n      apt: { packages: [mariadb-server] }\n');
  expectSuccess(await provision(['-i', pair(), '-p', pb, '--json'], { env, timeoutMs: RUN_BOUND_MS }));
  await snapshotHost(PRIMARY, 'mariadb', NAME);
  await snapshotHost(REPLICA, 'mariadb', NAME);

  // The primary, converged alone, with data written over two binary logs of which the first is purged:
  // the GTIDs of the early rows are in no binary log any more, so only a copy can bring them to a replica.
  expectSuccess(await converge(pair(), '--limit', PRIMARY));
  await sql(
    PRIMARY,
    `USE app;
     CREATE TABLE app.notes (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(100) NOT NULL, blob_col VARBINARY(16));
     INSERT INTO app.notes (body, blob_col) SELECT CONCAT('note ', seq), UNHEX(MD5(seq)) FROM seq_1_to_300;
     CREATE DATABASE shop;
     CREATE TABLE shop.orders (id INT PRIMARY KEY, total DECIMAL(10,2), note TEXT);
     INSERT INTO shop.orders SELECT seq, seq * 1.5, REPEAT('x', seq) FROM seq_1_to_120;
     FLUSH BINARY LOGS;
     INSERT INTO app.notes (body) VALUES ('after the flush');
     UPDATE shop.orders SET total = total + 1 WHERE id <= 10;`,
  );
  const current = (await sql(PRIMARY, 'SHOW MASTER STATUS')).split('\t')[0]!;
  await sql(PRIMARY, `PURGE BINARY LOGS TO '${current}'`);
  expect(await sql(PRIMARY, 'SHOW BINARY LOGS')).not.toContain('mysql-bin.000001');
});

afterAll(async () => {
  await labDown(NAME);
});

describe('a MariaDB replica is seeded, never reset blindly', () => {
  it('(1) a primary with data whose early binary logs are purged gets a complete replica: seeded, CHECKSUM TABLE equal, replicating', async () => {
    await restoreHost(REPLICA, 'mariadb', NAME);
    const r = await converge(pair());
    expectSuccess(r);
    expect(r.code).toBe(2);
    const task = taskResult(r, REPLICA, REPLICATION_TASK);
    expect(task?.status).toBe('changed');
    expect(String(task?.note)).toMatch(/seeded from web-01: [\d.]+ [KM]B in [\d.]+ s/);
    expect(String(task?.note)).toMatch(/\d+ tables equal to web-01's \(CHECKSUM TABLE at GTID 0-11-\d+\)/);
    console.log(`FIGURE seed of a replica (dump streamed over SSH, verified): ${task?.ms} ms; ${String(task?.note)}`);

    const s = await slaveStatus(REPLICA);
    expect([s.Slave_IO_Running, s.Slave_SQL_Running, s.Using_Gtid, s.Last_IO_Errno]).toEqual(['Yes', 'Yes', 'Slave_Pos', '0']);
    const sums = await checksumsWhenCaughtUp(APP_TABLES);
    expect(sums.replica).toBe(sums.primary);
    expect(await sql(REPLICA, 'SELECT COUNT(*) FROM app.notes')).toBe('301');
    // Nothing of the copy went to the replica's own binary log: no GTIDs of its own.
    expect(await sql(REPLICA, 'SELECT @@gtid_binlog_pos')).not.toMatch(/0-12-/);
    // And it keeps following: a row written on the primary now arrives.
    await sql(PRIMARY, "INSERT INTO app.notes (body) VALUES ('after the seed')");
    const arrived = await pollUntil(async () => (await sql(REPLICA, "SELECT COUNT(*) FROM app.notes WHERE body = 'after the seed'")) === '1', 30_000, 500);
    expect(arrived).toBe(true);

    const again = await converge(pair());
    expect(changedTasks(again)).toEqual([]);
    expect(again.code).toBe(0);
  });

  it('(2) a host with its own data and GTID position put in db_replica is refused, naming what it holds; its data is untouched', async () => {
    await restoreHost(REPLICA, 'mariadb', NAME);
    // A former primary: converged as the primary of an inventory of its own, then written to.
    expectSuccess(await run(inventory(`  ${REPLICA}: { address: ${SUBNET}.12, groups: [webservers, db_primary] }\n`), PRIMARY_PLAY));
    await sql(REPLICA, "CREATE DATABASE legacy; CREATE TABLE legacy.items (id INT PRIMARY KEY, name VARCHAR(20)); INSERT INTO legacy.items VALUES (1, 'kept'), (2, 'also kept');");
    await snapshotHost(REPLICA, 'former-primary', NAME);
    const position = await sql(REPLICA, 'SELECT @@gtid_binlog_pos, @@gtid_current_pos');
    const [binlogPos, currentPos] = position.split('\t');
    expect(binlogPos).toMatch(/^0-12-\d+$/);
    const databases = (await sql(REPLICA, "SELECT TABLE_SCHEMA, COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') GROUP BY TABLE_SCHEMA ORDER BY 1"))
      .split('\n')
      .map((l) => l.split('\t'))
      .map(([db, n]) => `${db} (${n} table${n === '1' ? '' : 's'})`)
      .join(', ');
    expect(databases).toContain('legacy (1 table)');
    const legacyBefore = await sql(REPLICA, 'CHECKSUM TABLE legacy.items');

    const r = await converge(pair());
    expect(r.code).toBe(1);
    const refused = taskResult(r, REPLICA, REPLICATION_TASK);
    expect(refused?.status).toBe('failed');
    expect(refused?.msg).toBe(
      `refusing to make this server a replica: it holds data of its own (gtid_binlog_pos ${binlogPos}, gtid_current_pos ${currentPos}; databases ${databases}), ` +
        'which seeding it from web-01 would replace. Nothing was changed. To replace it with a copy of web-01, set mysql_replica_reinitialize: true in ' +
        "this host's vars (module parameter reinitialize: true)",
    );
    // Untouched: its GTID state, its data, no replication configured.
    expect(await sql(REPLICA, 'SELECT @@gtid_binlog_pos, @@gtid_current_pos')).toBe(position);
    expect(await sql(REPLICA, 'CHECKSUM TABLE legacy.items')).toBe(legacyBefore);
    expect(await sql(REPLICA, 'SELECT name FROM legacy.items ORDER BY id')).toBe('kept\nalso kept');
    expect(await slaveStatus(REPLICA)).toEqual({});
  });

  it('(3) with mysql_replica_reinitialize: true the same host is re-seeded from the primary: its own data replaced, checksums equal, replicating', async () => {
    await restoreHost(REPLICA, 'former-primary', NAME);
    const r = await converge(pair('mysql_replica_reinitialize: true'));
    expectSuccess(r);
    const task = taskResult(r, REPLICA, REPLICATION_TASK);
    expect(task?.status).toBe('changed');
    const change = (task?.changes as Array<{ action: string }>)[0]!;
    expect(change.action).toMatch(/^seed from web-01 \(reinitialize: replacing gtid_binlog_pos 0-12-\d+, gtid_current_pos 0-12-\d+; databases .*legacy \(1 table\)/);
    expect(String(task?.note)).toMatch(/tables equal to web-01's/);

    expect(await sql(REPLICA, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'legacy'")).toBe('0');
    const s = await slaveStatus(REPLICA);
    expect([s.Slave_IO_Running, s.Slave_SQL_Running, s.Using_Gtid]).toEqual(['Yes', 'Yes', 'Slave_Pos']);
    const sums = await checksumsWhenCaughtUp(APP_TABLES);
    expect(sums.replica).toBe(sums.primary);
    const again = await converge(pair('mysql_replica_reinitialize: true'));
    expect(changedTasks(again)).toEqual([]);
    expect(again.code).toBe(0);
  });

  it('(4) accounts the role made for an address that left the inventory are dropped on the next run, on both servers; one made by hand is untouched', async () => {
    // The pair as test 3 left it: replicating. web-03 (an address only: never contacted) joins as a web host and a replica.
    const withWeb03 = pair('', `  web-03: { address: ${SUBNET}.13, groups: [webservers, db_replica] }\n`);
    expectSuccess(await converge(withWeb03, '--limit', PRIMARY));
    const accounts = "SELECT CONCAT(User, '@', Host) FROM mysql.user WHERE Host = '10.94.0.13' ORDER BY 1";
    expect(await sql(PRIMARY, accounts)).toBe('app@10.94.0.13\nreplicator@10.94.0.13');
    await sql(PRIMARY, "CREATE USER 'report'@'10.94.0.13' IDENTIFIED BY 'Report-Passw0rd-1'; GRANT SELECT ON app.* TO 'report'@'10.94.0.13';");
    const all = 'app@10.94.0.13\nreplicator@10.94.0.13\nreport@10.94.0.13';
    expect(await pollUntil(async () => (await sql(REPLICA, accounts)) === all, 30_000, 500)).toBe(true);

    // web-03 leaves the inventory.
    const r = await converge(pair());
    expectSuccess(r);
    const pruned = taskResult(r, PRIMARY, ACCOUNTS_TASK);
    expect(pruned?.status).toBe('changed');
    expect((pruned?.changes as Array<{ target: string; action: string }>).map((c) => `${c.target}: ${c.action}`)).toEqual([
      'user app@10.94.0.13: drop (made by role mysql, no longer in the inventory)',
      'user replicator@10.94.0.13: drop (made by role mysql, no longer in the inventory)',
    ]);
    expect(changedTasks(r).map((e) => `${e.host}: ${e.task}`)).toEqual([`${PRIMARY}: ${ACCOUNTS_TASK}`]);
    expect(await sql(PRIMARY, accounts)).toBe('report@10.94.0.13');
    expect(await sql(PRIMARY, "SHOW GRANTS FOR 'report'@'10.94.0.13'")).toContain('GRANT SELECT ON `app`.* TO `report`@`10.94.0.13`');
    // Replicated, not done twice: the replica drops them by following the primary, and keeps following.
    expect(await pollUntil(async () => (await sql(REPLICA, accounts)) === 'report@10.94.0.13', 30_000, 500)).toBe(true);
    const s = await slaveStatus(REPLICA);
    expect([s.Slave_IO_Running, s.Slave_SQL_Running, s.Last_SQL_Errno]).toEqual(['Yes', 'Yes', '0']);

    const again = await converge(pair());
    expect(changedTasks(again)).toEqual([]);
    expect(again.code).toBe(0);
  });
});
