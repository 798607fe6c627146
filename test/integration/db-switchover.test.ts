/**
 * A planned switchover of the MariaDB writer on real lab hosts (instance `dbsw`, 10.88.0.0/24, web-01
 * primary, web-02 replica, converged by the mysql role as the site runs it), with a client writing all along:
 *
 *   1. `db status` names the primary and the replica's source, threads and GTID positions;
 *   2. `db switchover --to web-02` while a writer (on web-02, through the app's DB user, over TCP) inserts
 *      numbered rows in a bounded loop, following the writable server by its own rule (an error: try the
 *      other server next): afterwards every acknowledged id is on the new primary and on the new replica
 *      (counted), the write pause is measured (FIGURE), status names web-02;
 *   3. a converge from the inventory that still names web-01 is refused on both database hosts, nothing
 *      changed, web-02 still the writer; the inventory updated as the switchover said converges and keeps
 *      web-02 the primary without touching the replication the switchover set up (TLS, verified) nor its
 *      account (REQUIRE SSL), and a second run changes nothing;
 *   4. switching back to web-01 (writer running again) works, and the original inventory converges;
 *   5. a target that cannot catch up within the bound: the switchover rolls back (old primary writable,
 *      target replicating from it), and the write it was waiting for arrives.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labUp } from '../../src/lab/index.ts';
import { changedTasks, type CliResult } from '../e2e/lab-env.ts';
import { pollUntil, taskResult } from './faults-helpers.ts';
import { dbLab, env, expectSuccess, longestGap, type Ack, type Status } from './db-helpers.ts';

const NAME = 'dbsw';
const SUBNET = '10.88.0';
const [WEB1, WEB2] = ['web-01', 'web-02'];
const ADDRESS: Record<string, string> = { [WEB1]: `${SUBNET}.11`, [WEB2]: `${SUBNET}.12` };
const GUARD_TASK = (primary: string) => `the recorded database primary is the inventory's (${primary})`;
const dir = mkdtempSync(path.join(tmpdir(), 'provision-dbsw-'));
const { inventory, converge, db, sh, sql, status, expectPrimary, startWriter, waitForAcks, stopWriter, writerLogin } = dbLab({ name: NAME, dir, address: ADDRESS });
let original: string;
let swapped: string;

/** Run the switchover to `to` while the writer (on web-02) writes; every acknowledged id checked on both servers. */
async function switchoverUnderWrites(inv: string, from: string, to: string): Promise<{ result: CliResult; acked: Ack[]; pauseMs: number; failedAttempts: number }> {
  const writing = startWriter(WEB2, from, to);
  await waitForAcks(WEB2, from, 30, 'before the switchover');
  const result = await db('switchover', '-i', inv, '--to', to, '--writes-timeout', '5', '--catch-up-timeout', '30');
  await waitForAcks(WEB2, to, 30, `after the switchover\n${result.stdout}${result.stderr}`);
  const { acked, failedAttempts } = await stopWriter(WEB2, writing);
  return { result, acked, pauseMs: longestGap(acked), failedAttempts };
}

/** Every acknowledged id is on `host` (the new replica once it applied the new primary's position). */
async function expectAllAcknowledged(host: string, acked: Ack[], primary: string): Promise<void> {
  const target = await sql(primary, 'SELECT @@gtid_binlog_pos');
  if (host !== primary) expect(await sql(host, `SELECT MASTER_GTID_WAIT('${target}', 30)`)).toBe('0');
  const ids = new Set((await sql(host, 'SELECT id FROM app.writes')).split('\n').map(Number));
  const missing = acked.filter((a) => !ids.has(a.id)).map((a) => a.id);
  expect(missing, `acknowledged ids missing on ${host}`).toEqual([]);
  expect(ids.size).toBeGreaterThanOrEqual(acked.length);
}

beforeAll(async () => {
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: [WEB1, WEB2], pebble: false });
  original = inventory(WEB1);
  swapped = inventory(WEB2);
  expectSuccess(await converge(original));
  await sql(WEB1, 'CREATE TABLE app.writes (id INT PRIMARY KEY, via VARCHAR(20) NOT NULL, at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))');
  await writerLogin(WEB2);
}, 900_000);

afterAll(async () => {
  await labDown(NAME);
});

describe('db switchover: the writer moves, no acknowledged write is lost', () => {
  it('(1) db status names the primary and the replica: source, threads, GTIDs', async () => {
    const s = await status(original);
    expectPrimary(s, WEB1, WEB2);
    const text = await db('status', '-i', original);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^primary: web-01 \(writable, not replicating; executed 0-\d+-\d+\)$/m);
    expect(text.stdout).toMatch(/^replica web-02: from web-01 \(10\.88\.0\.11:3306\), IO Yes, SQL Yes, lag \d+ s, received 0-\d+-\d+, executed 0-\d+-\d+$/m);
  });

  it('(2) switchover to web-02 under writes: every acknowledged id on both servers, the pause measured', async () => {
    const { result, acked, pauseMs, failedAttempts } = await switchoverUnderWrites(original, WEB1, WEB2);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    for (const step of [/web-01: read_only ON/, /web-02: applied every transaction of web-01 \(MASTER_GTID_WAIT of 0-\d+-\d+ returned 0/, /web-02: read_only OFF: it is the primary \(writes were refused for \d+ ms\)/, /web-01: replicates from web-02 by GTID, both threads running, caught up/]) {
      expect(result.stdout).toMatch(step);
    }
    expect(result.stdout).toContain('Update the inventory: web-02 in db_primary, web-01 in db_replica');
    // The replication password: not in the output, not in either server's binary log (the account was made by its hash).
    const password = env.PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD;
    expect(result.stdout + result.stderr).not.toContain(password);
    for (const h of [WEB1, WEB2]) expect(await sh(h, `grep -a -l ${password} /var/lib/mysql/mysql-bin.0* || true`)).toBe('');
    const refused = /writes were refused for (\d+) ms/.exec(result.stdout)![1];
    console.log(`FIGURE switchover web-01 → web-02 under writes: ${acked.length} ids acknowledged (${acked.filter((a) => a.via === ADDRESS[WEB1]).length} by web-01, ${acked.filter((a) => a.via === ADDRESS[WEB2]).length} by web-02), longest gap between acknowledgements ${pauseMs} ms, read-only window (tool) ${refused} ms, ${failedAttempts} refused attempts retried`);
    expect(acked.filter((a) => a.via === ADDRESS[WEB1]).length).toBeGreaterThanOrEqual(30);
    expect(acked.filter((a) => a.via === ADDRESS[WEB2]).length).toBeGreaterThanOrEqual(30);
    await expectAllAcknowledged(WEB2, acked, WEB2);
    await expectAllAcknowledged(WEB1, acked, WEB2);

    expectPrimary(await status(original), WEB2, WEB1);
    expect(await sql(WEB1, 'SELECT @@read_only')).toBe('1');
    expect(await sql(WEB2, 'SELECT @@read_only')).toBe('0');
    for (const h of [WEB1, WEB2]) expect(JSON.parse(await sh(h, 'cat /var/lib/provision/db-primary.json'))).toMatchObject({ primary: WEB2, address: ADDRESS[WEB2] });

    // The old primary restarted before the inventory is updated (its role config still says primary): read-only, replicating.
    await sh(WEB1, 'systemctl restart mariadb && mysqladmin --wait=30 ping >/dev/null');
    expect(await sql(WEB1, 'SELECT @@read_only')).toBe('1');
    const healthy = await pollUntil(async () => {
      const r = await db('status', '-i', original, '--json');
      return r.code === 0 && (JSON.parse(r.stdout) as Status).primary === WEB2;
    }, 60_000, 1000);
    expect(healthy, 'web-02 the primary, web-01 replicating again after its restart').toBe(true);
  });

  it('(3) a converge from the old inventory is refused on both hosts, nothing changed; the updated inventory converges and keeps web-02 the primary', async () => {
    const before = await sql(WEB2, 'SELECT @@gtid_binlog_pos');
    const refused = await converge(original);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    for (const h of [WEB1, WEB2]) {
      const t = taskResult(refused, h, GUARD_TASK(WEB1));
      expect(t?.status).toBe('failed');
      expect(String(t?.msg)).toMatch(/^refusing to converge the database: web-02 \(10\.88\.0\.12\) is the primary recorded on this host \(provision db switchover .*\), but the inventory puts web-01 in db_primary.*Update the inventory: db_primary: \[web-02\], db_replica: \[web-01\]/);
    }
    expect(changedTasks(refused)).toEqual([]);
    expect(await sql(WEB2, 'SELECT @@gtid_binlog_pos')).toBe(before);
    expectPrimary(await status(original), WEB2, WEB1);

    // The first converge of the updated inventory: the servers' roles change in their config, but the
    // replication the switchover set up (verified TLS) and the account it made (REQUIRE SSL) are the role's own.
    const first = await converge(swapped);
    expectSuccess(first);
    const replicationChanges = changedTasks(first).filter((e) => /^replication user |^replicate from /.test(String(e.task)));
    expect(replicationChanges.map((e) => `${e.host}: ${e.task}`)).toEqual([]);
    console.log(`changed by the first converge after the switchover: ${changedTasks(first).map((e) => `${e.host}: ${e.task}`).join('; ')}`);
    expectPrimary(await status(swapped), WEB2, WEB1);
    const again = await converge(swapped);
    expect(changedTasks(again).map((e) => `${e.host}: ${e.task}`)).toEqual([]);
    expect(again.code).toBe(0);
    expectPrimary(await status(swapped), WEB2, WEB1);
  });

  it('(4) switching back to web-01 under writes works, and the original inventory converges again', async () => {
    const { result, acked, pauseMs } = await switchoverUnderWrites(swapped, WEB2, WEB1);
    expect(result.code, result.stdout + result.stderr).toBe(2);
    console.log(`FIGURE switchover back web-02 → web-01 under writes: ${acked.length} ids acknowledged, longest gap between acknowledgements ${pauseMs} ms`);
    await expectAllAcknowledged(WEB1, acked, WEB1);
    await expectAllAcknowledged(WEB2, acked, WEB1);
    expectPrimary(await status(swapped), WEB1, WEB2);
    expectSuccess(await converge(original));
    expectPrimary(await status(original), WEB1, WEB2);
  });

  it('(5) a target that cannot catch up in time: rolled back, the old primary writable again, the target following it', async () => {
    // The target's SQL thread blocked behind a global read lock (held 20 s) while the primary takes a write.
    await sh(WEB2, `nohup mysql -e "FLUSH TABLES WITH READ LOCK; SELECT SLEEP(20)" >/dev/null 2>&1 &`);
    await sql(WEB1, "INSERT INTO app.writes (id, via) VALUES (900001, 'manual')");
    const r = await db('switchover', '-i', original, '--to', WEB2, '--catch-up-timeout', '3');
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/FAILED before the promotion: web-02 did not apply web-01's GTIDs 0-11-\d+ within 3 s/);
    expect(r.stdout).toContain('rolled back: web-01 is writable again, still the primary');
    expect(r.stdout).toContain('switchover FAILED and rolled back: web-01 is the primary, writable');
    expect(await sql(WEB1, 'SELECT @@read_only')).toBe('0');
    expect(await sql(WEB2, 'SELECT @@read_only')).toBe('1');
    expect(JSON.parse(await sh(WEB2, 'cat /var/lib/provision/db-primary.json'))).toMatchObject({ primary: WEB1 });
    // Once the lock is gone the replica applies the write: nothing lost, web-01 still the primary.
    expect(await pollUntil(async () => (await sql(WEB2, 'SELECT COUNT(*) FROM app.writes WHERE id = 900001')) === '1', 60_000, 500)).toBe(true);
    expectPrimary(await status(original), WEB1, WEB2);
  });
});
