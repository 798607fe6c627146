/**
 * Unplanned failover and rejoin of the MariaDB writer on real lab hosts (instance `f4fo`, 10.112.0.0/24,
 * web-01 primary, web-02 replica, converged by the mysql role), with a client writing numbered rows:
 *
 *   1. the primary's host stopped (machine stop) while the writer writes to it: `db failover` without
 *      --force is refused (SSH down: it cannot be fenced), nothing changed; with --force web-02 is
 *      promoted and the tool says what may be lost (anything after what web-02 received); the writer
 *      resumes on web-02 (pause measured: FIGURE); once web-01 is back, what it holds beyond that
 *      position is exactly what is missing on web-02, and every acknowledged id missing on web-02 is in it;
 *   2. `db rejoin web-01`: its diverged transactions counted (the same number), its data moved aside,
 *      a copy of web-02 loaded, replicating, CHECKSUM TABLE equal, status: one primary;
 *   3. the fence: web-02 answers SSH but its mysqld is stopped → `db failover` (no --force) fences it
 *      (port 3306 closed by the recorded rule, read-only config) and promotes web-01; writes resume
 *      (pause measured); `db rejoin web-02` lifts the fence.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp, startHost, stopHost } from '../../src/lab/index.ts';
import { dbLab, expectSuccess, longestGap, type Ack, type Status } from './db-helpers.ts';
import { pollUntil } from './faults-helpers.ts';

const NAME = 'f4fo';
const SUBNET = '10.112.0';
const [WEB1, WEB2] = ['web-01', 'web-02'];
const ADDRESS: Record<string, string> = { [WEB1]: `${SUBNET}.11`, [WEB2]: `${SUBNET}.12` };
const dir = mkdtempSync(path.join(tmpdir(), 'provision-f4fo-'));
const { inventory, converge, db, sh, sql, status, expectPrimary, startWriter, waitForAcks, stopWriter, writerLogin } = dbLab({ name: NAME, dir, address: ADDRESS });
let inv: string;

const ids = async (host: string) => new Set((await sql(host, 'SELECT id FROM app.writes')).split('\n').filter(Boolean).map(Number));
const seqOf = (pos: string, server: number) => Number(new RegExp(`(?:^|,)0-${server}-(\\d+)`).exec(pos)?.[1] ?? 0);

/** CHECKSUM TABLE app.writes on both, once the replica applied the primary's position. */
async function expectSameTable(primary: string, replica: string): Promise<void> {
  const pos = await sql(primary, 'SELECT @@gtid_binlog_pos');
  expect(await sql(replica, `SELECT MASTER_GTID_WAIT('${pos}', 30)`)).toBe('0');
  const sum = (h: string) => sql(h, 'CHECKSUM TABLE app.writes');
  expect(await sum(replica)).toBe(await sum(primary));
}

beforeAll(async () => {
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: [WEB1, WEB2], pebble: false });
  inv = inventory(WEB1);
  expectSuccess(await converge(inv));
  await sql(WEB1, 'CREATE TABLE app.writes (id INT PRIMARY KEY, via VARCHAR(20) NOT NULL, at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))');
  await Promise.all([WEB1, WEB2].map((h) => writerLogin(h)));
  // The fence is an iptables rule; on the site the firewall role (ufw) brings iptables.
  await Promise.all([WEB1, WEB2].map((h) => sh(h, 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables >/dev/null', 300_000)));
}, 900_000);

afterAll(async () => {
  await labDown(NAME);
});

describe('db failover and rejoin', () => {
  let receivedSeq = 0;
  let divergedIds: number[] = [];

  it('(1) the primary host stopped: refused without --force; --force promotes web-02, reports what may be lost, writes resume', async () => {
    const writing = startWriter(WEB2, WEB1, WEB2);
    await waitForAcks(WEB2, WEB1, 30, 'before the failure');
    await stopHost(WEB1, NAME);

    const refused = await db('failover', '-i', inv);
    expect(refused.code, refused.stdout + refused.stderr).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/^provision: db failover refused: web-01 is unreachable over SSH .*cannot be fenced.*Nothing was changed\. --force promotes/);
    expect(await sql(WEB2, 'SELECT @@read_only')).toBe('1');

    const started = Date.now();
    const forced = await db('failover', '-i', inv, '--force');
    const commandMs = Date.now() - started;
    expect(forced.code, forced.stdout + forced.stderr).toBe(2);
    const lost = /possibly lost: web-01's own position could not be read: any transaction it committed after (0-11-(\d+)) \(what web-02 received\) is lost; web-02 received \1, executed \1\. /.exec(forced.stdout);
    expect(lost, forced.stdout).not.toBeNull();
    receivedSeq = Number(lost![2]);
    expect(forced.stdout).toMatch(/web-02: replication cleared, read_only OFF: it is the primary/);
    expect(forced.stdout).toMatch(/failed over: web-02 is the primary \(web-01: not fenced \(--force\)\)/);

    await waitForAcks(WEB2, WEB2, 30, `after the failover\n${forced.stdout}${forced.stderr}`);
    const { acked, failedAttempts } = await stopWriter(WEB2, writing);
    const pauseMs = longestGap(acked);
    const resumedMs = acked.find((a) => a.via === ADDRESS[WEB2])!.at - started;
    const onNew = await ids(WEB2);
    const missing = acked.filter((a: Ack) => !onNew.has(a.id)).map((a) => a.id);

    const s = await db('status', '-i', inv, '--json');
    expect(s.code).toBe(3); // web-01 still down
    expect((JSON.parse(s.stdout) as Status).primary).toBe(WEB2);

    // web-01 back: what it holds beyond the reported position is exactly what web-02 lacks.
    await startHost(WEB1, NAME);
    expect(await pollUntil(async () => (await hostExec(WEB1, ['mysqladmin', 'ping'], NAME).catch(() => ({ code: 1 }))).code === 0, 90_000, 500)).toBeTruthy();
    const oldPos = await sql(WEB1, 'SELECT @@gtid_binlog_pos');
    const onOld = await ids(WEB1);
    divergedIds = [...onOld].filter((id) => !onNew.has(id));
    expect(divergedIds.length, `web-01 ${oldPos}, reported received 0-11-${receivedSeq}`).toBe(seqOf(oldPos, 11) - receivedSeq);
    for (const id of missing) expect(divergedIds, `acknowledged id ${id} missing on web-02 is in what was reported as possibly lost`).toContain(id);
    console.log(
      `FIGURE failover --force (web-01's host stopped under writes): ${acked.length} ids acknowledged, longest gap between acknowledgements ${pauseMs} ms (includes the refused run without --force), first write on web-02 ${resumedMs} ms after db failover --force began, ` +
        `db failover --force ${commandMs} ms wall, ${failedAttempts} refused attempts; possibly lost after 0-11-${receivedSeq}: ${divergedIds.length} transaction(s) on web-01, ${missing.length} acknowledged id(s) missing on web-02`,
    );
  });

  it('(2) rejoin web-01: its diverged writes set aside, a copy of web-02 loaded, replicating, CHECKSUM TABLE equal', async () => {
    const r = await db('rejoin', WEB1, '-i', inv);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toMatch(divergedIds.length === 0 ? /web-01: holds nothing the primary does not/ : new RegExp(`web-01: holds ${divergedIds.length} transaction\\(s\\) the primary never had`));
    const aside = /its data directory moved to (\/var\/lib\/mysql\.before-rejoin-\d+T\d+)/.exec(r.stdout)?.[1];
    expect(aside, r.stdout).toBeDefined();
    expect(await sh(WEB1, `ls ${aside} | grep -c '^mysql-bin\\.0'`)).not.toBe('0');
    expect(r.stdout).toMatch(/web-01: replicates from web-02 by GTID, both threads running, caught up/);
    expect(r.stdout).toMatch(/web-01: \d+ tables? equal to web-02's \(CHECKSUM TABLE at GTID /);
    expectPrimary(await status(inv), WEB2, WEB1);
    await expectSameTable(WEB2, WEB1);
    expect([...(await ids(WEB1))].sort()).toEqual([...(await ids(WEB2))].sort());
    expect(await sh(WEB1, 'iptables -S INPUT')).not.toContain('provision-db-fence');
    expect(await sql(WEB1, 'SELECT @@read_only')).toBe('1');
  });

  it('(3) web-02 answers SSH, its mysqld is down: fenced (3306 closed, recorded), web-01 promoted; rejoin lifts the fence', async () => {
    await sql(WEB2, 'DELETE FROM app.writes');
    const writing = startWriter(WEB1, WEB2, WEB1);
    await waitForAcks(WEB1, WEB2, 30, 'before the failure');
    await sh(WEB2, 'systemctl stop mariadb');

    const started = Date.now();
    const r = await db('failover', '-i', inv);
    const commandMs = Date.now() - started;
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toMatch(/web-02 \(10\.112\.0\.12\) is the failed primary: SSH answers, SQL does not/);
    expect(r.stdout).toMatch(/web-02: fenced: port 3306 closed \(iptables -I INPUT -p tcp --dport 3306 -m comment --comment provision-db-fence -j REJECT --reject-with tcp-reset/);
    expect(r.stdout).toMatch(/failed over: web-01 is the primary \(web-02: port closed\)/);
    await waitForAcks(WEB1, WEB1, 30, `after the failover\n${r.stdout}`);
    const { acked } = await stopWriter(WEB1, writing);
    const resumedMs = acked.find((a) => a.via === ADDRESS[WEB1])!.at - started;
    const onNew = await ids(WEB1);
    const missing = acked.filter((a) => !onNew.has(a.id)).map((a) => a.id);

    // The fence: the rule and its record; web-02's server started again is read-only and unreachable on 3306.
    expect(await sh(WEB2, 'iptables -S INPUT')).toContain('provision-db-fence');
    expect(JSON.parse(await sh(WEB2, 'cat /var/lib/provision/db-fence.json'))).toMatchObject({ port: 3306, by: 'provision db failover' });
    await sh(WEB2, 'systemctl start mariadb && mysqladmin --wait=30 ping >/dev/null');
    expect(await sql(WEB2, 'SELECT @@read_only')).toBe('1');
    const probe = await hostExec(WEB1, ['sh', '-c', `mysql --defaults-extra-file=/root/writer.cnf -h ${ADDRESS[WEB2]} --connect-timeout=3 -e 'SELECT 1' 2>&1`], NAME);
    expect(probe.code, probe.stdout).not.toBe(0);
    const onFenced = await ids(WEB2);
    for (const id of missing) expect(onFenced.has(id), `acknowledged id ${id} missing on web-01 is on the fenced web-02`).toBe(true);
    console.log(`FIGURE failover with fence (web-02's mysqld stopped, SSH up) under writes: ${acked.length} ids acknowledged, longest gap between acknowledgements ${longestGap(acked)} ms, first write on web-01 ${resumedMs} ms after db failover began, db failover ${commandMs} ms wall, ${missing.length} acknowledged id(s) missing on web-01`);

    const back = await db('rejoin', WEB2, '-i', inv);
    expect(back.code, back.stdout + back.stderr).toBe(2);
    expect(back.stdout).toMatch(/web-02: fence lifted \(port 3306 open again\)/);
    expect(await sh(WEB2, 'iptables -S INPUT')).not.toContain('provision-db-fence');
    expect(await sh(WEB2, 'test -e /var/lib/provision/db-fence.json && echo present || echo absent')).toBe('absent');
    expectPrimary(await status(inv), WEB1, WEB2);
    await expectSameTable(WEB1, WEB2);
    const open = await hostExec(WEB1, ['sh', '-c', `mysql --defaults-extra-file=/root/writer.cnf -h ${ADDRESS[WEB2]} --connect-timeout=3 -e 'SELECT 1' 2>&1`], NAME);
    expect(open.code, open.stdout).toBe(0);
  });

  it('(4) a primary that answers and is writable: failover refused, use switchover', async () => {
    const r = await db('failover', '-i', inv, '--force');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/web-01 answers and is writable: the primary is alive, this is not a failover\. To move the writer, use provision db switchover/);
    expectPrimary(await status(inv), WEB1, WEB2);
  });
});
