/**
 * The two pieces of a replica's seed that run without a host: the stream from the primary's dump
 * into the replica's client (both ends are fake processes on PassThrough streams), and the
 * comparison of both servers' tables after catch-up (both ends are scripted SQL runners).
 */
import { PassThrough } from 'node:stream';
import { describe, expect, test } from 'vitest';
import { compareWithPrimary, sameGtid, type SqlRunner } from '../../../src/modules/mysql/compare.ts';
import { LOAD_PREFIX, LOAD_SUFFIX, streamInto } from '../../../src/modules/mysql/seed.ts';
import type { RemoteProcess } from '../../../src/transport/index.ts';

/** A remote command on streams: what it was sent, and how it ends. */
function fakeProcess() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let received = '';
  let stdinEnded = false;
  stdin.on('data', (d: Buffer) => (received += d.toString()));
  stdin.on('end', () => (stdinEnded = true));
  let settle!: (r: { code: number; stderr: string }) => void;
  const done = new Promise<{ code: number; stderr: string }>((r) => (settle = r));
  const state = { closed: false };
  const exit = (code: number, stderr = '') => {
    stdout.end();
    settle({ code, stderr });
  };
  const proc: RemoteProcess = {
    stdin,
    stdout,
    done,
    close: () => {
      state.closed = true;
      exit(255);
    },
  };
  return { proc, out: stdout, exit, state, received: () => received, stdinEnded: () => stdinEnded };
}

/** A client that loads what it reads and, at EOF, answers the suffix's SELECT like `mysql` does. */
function loadingClient() {
  const sink = fakeProcess();
  sink.proc.stdin.on('end', () => {
    if (sink.received().includes("SELECT 'provision: copy loaded'")) sink.out.write('provision: copy loaded\n');
    sink.exit(0);
  });
  return sink;
}

describe('streamInto: the dump piped into the replica', () => {
  test('a dump that exits 0 arrives whole, between the prefix (no binary log) and the suffix, and the load is confirmed', async () => {
    const source = fakeProcess();
    const sink = loadingClient();
    const copying = streamInto(source.proc, sink.proc, 'web-01');
    source.out.write('CREATE TABLE t (id INT);\n');
    source.out.write("INSERT INTO t VALUES (1);\nSET GLOBAL gtid_slave_pos='0-11-20';\n");
    source.exit(0);
    const bytes = await copying;
    expect(sink.received()).toBe(`${LOAD_PREFIX}CREATE TABLE t (id INT);\nINSERT INTO t VALUES (1);\nSET GLOBAL gtid_slave_pos='0-11-20';\n${LOAD_SUFFIX}`);
    expect(bytes).toBe(Buffer.byteLength("CREATE TABLE t (id INT);\nINSERT INTO t VALUES (1);\nSET GLOBAL gtid_slave_pos='0-11-20';\n"));
    expect(source.state.closed).toBe(false);
  });

  test('a dump that fails half-way: the load is closed without the suffix, and the error names the dump and says the copy is partial', async () => {
    const source = fakeProcess();
    const sink = fakeProcess();
    const copying = streamInto(source.proc, sink.proc, 'web-01');
    source.out.write('INSERT INTO t VALUES (1);\n');
    source.exit(2, 'mariadb-dump: Error 2013: Lost connection to server during query when dumping table `t`\n');
    await expect(copying).rejects.toThrow(/^the dump on web-01 failed \(exit 2\): mariadb-dump: Error 2013: Lost connection.*partial copy, which the next run replaces$/);
    expect(sink.state.closed).toBe(true);
    expect(sink.received()).not.toContain('provision: copy loaded');
    expect(sink.stdinEnded()).toBe(false);
  });

  test('a load that fails while the dump still runs: the dump is closed, the error names the load and its message', async () => {
    const source = fakeProcess();
    const sink = fakeProcess();
    const copying = streamInto(source.proc, sink.proc, 'web-01');
    source.out.write('INSERT INTO t VALUES (1);\n');
    sink.exit(1, "ERROR 1290 (HY000) at line 2: The MariaDB server is running with the --read-only option so it cannot execute this statement\n");
    await expect(copying).rejects.toThrow('loading the copy of web-01 into this server failed (exit 1): ERROR 1290 (HY000) at line 2');
    expect(source.state.closed).toBe(true);
  });

  test('a load that exits 0 without confirming the end of the copy is a failure, not a seed', async () => {
    const source = fakeProcess();
    const sink = fakeProcess();
    sink.proc.stdin.on('end', () => sink.exit(0));
    const copying = streamInto(source.proc, sink.proc, 'web-01');
    source.exit(0);
    await expect(copying).rejects.toThrow('loading the copy of web-01 into this server failed (exit 0)');
  });
});

/** A runner answering each query with the next scripted answer whose test matches it; records every query. */
function scripted(answers: Array<[RegExp, string]>): SqlRunner & { queries: string[] } {
  const queries: string[] = [];
  const run = (async (sql: string) => {
    queries.push(sql);
    const i = answers.findIndex(([re]) => re.test(sql));
    if (i < 0) throw new Error(`unexpected query: ${sql}`);
    return answers.splice(i, 1)[0]![1];
  }) as SqlRunner & { queries: string[] };
  run.queries = queries;
  return run;
}

const TABLES: [RegExp, string] = [/information_schema\.TABLES/, 'app\tt1\nshop\torders\n'];
const at = (pos: string, sums: string) => `@@pos\t${pos}\n${sums}@@pos\t${pos}\n`;
const SUMS = 'app.t1\t111\nshop.orders\t222\n';
const options = { flavor: 'mariadb' as const, primaryName: 'web-01', deadline: Date.now() + 30_000 };

describe('compareWithPrimary: the tables after catch-up', () => {
  test('equal checksums at one GTID position: the note says how many tables and where; the replica waited for that position', async () => {
    const primary = scripted([TABLES, [/CHECKSUM TABLE `app`\.`t1`, `shop`\.`orders`/, at('0-11-20', SUMS)]]);
    const replica = scripted([[/MASTER_GTID_WAIT\('0-11-20', \d+\)/, `@@wait\t0\n${SUMS}@@pos\t0-11-20\n`]]);
    expect(await compareWithPrimary(primary, replica, options)).toBe("2 tables equal to web-01's (CHECKSUM TABLE at GTID 0-11-20)");
    expect(replica.queries[0]).toContain('@@GLOBAL.gtid_slave_pos');
    expect(primary.queries[1]).toContain('@@GLOBAL.gtid_binlog_pos');
  });

  test('a table that differs or is missing on the replica fails, naming both checksums', async () => {
    const primary = scripted([TABLES, [/CHECKSUM/, at('0-11-20', SUMS)]]);
    const replica = scripted([[/MASTER_GTID_WAIT/, '@@wait\t0\napp.t1\t111\nshop.orders\tNULL\n@@pos\t0-11-20\n']]);
    await expect(compareWithPrimary(primary, replica, options)).rejects.toThrow(
      "at GTID position 0-11-20, the replica's tables differ from web-01's: shop.orders (primary 222, replica missing)",
    );
  });

  test('the primary written to during its checksums, then the replica past the position: both attempts are repeated, the third compares', async () => {
    const primary = scripted([
      TABLES,
      [/CHECKSUM/, '@@pos\t0-11-20\napp.t1\t1\nshop.orders\t2\n@@pos\t0-11-21\n'],
      [/CHECKSUM/, at('0-11-21', SUMS)],
      [/CHECKSUM/, at('0-11-22', SUMS)],
    ]);
    const replica = scripted([
      [/MASTER_GTID_WAIT\('0-11-21'/, `@@wait\t0\n${SUMS}@@pos\t0-11-22\n`],
      [/MASTER_GTID_WAIT\('0-11-22'/, `@@wait\t0\n${SUMS}@@pos\t0-11-22\n`],
    ]);
    expect(await compareWithPrimary(primary, replica, options)).toContain('at GTID 0-11-22');
  });

  test('a primary busy in every attempt: reported as not compared, never as equal', async () => {
    const busy = Array.from({ length: 5 }, (_, i): [RegExp, string] => [/CHECKSUM/, `@@pos\t0-11-${i}\n${SUMS}@@pos\t0-11-${i + 1}\n`]);
    const replica = scripted([]);
    expect(await compareWithPrimary(scripted([TABLES, ...busy]), replica, options)).toBe('tables not compared: web-01 took writes during each of 5 attempts');
    expect(replica.queries).toEqual([]);
  });

  test('a replica that does not reach the position within the bound fails', async () => {
    const primary = scripted([TABLES, [/CHECKSUM/, at('0-11-20', SUMS)]]);
    const replica = scripted([[/MASTER_GTID_WAIT/, `@@wait\t-1\n${SUMS}@@pos\t0-11-3\n`]]);
    await expect(compareWithPrimary(primary, replica, { ...options, deadline: Date.now() - 1 })).rejects.toThrow("the replica did not reach web-01's GTID position 0-11-20 within");
  });

  test('a wait that ran out before the deadline is repeated (each wait is short; the deadline bounds them all)', async () => {
    const primary = scripted([TABLES, [/CHECKSUM/, at('0-11-20', SUMS)], [/CHECKSUM/, at('0-11-20', SUMS)]]);
    const replica = scripted([
      [/MASTER_GTID_WAIT\('0-11-20', 20\)/, `@@wait\t-1\n${SUMS}@@pos\t0-11-3\n`],
      [/MASTER_GTID_WAIT\('0-11-20', 20\)/, `@@wait\t0\n${SUMS}@@pos\t0-11-20\n`],
    ]);
    expect(await compareWithPrimary(primary, replica, { ...options, deadline: Date.now() + 60_000 })).toContain('2 tables equal');
  });

  test('MySQL 8: WAIT_FOR_EXECUTED_GTID_SET and gtid_executed on both sides, GTID sets compared whatever their order and line breaks', async () => {
    const set = '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\\n9a1b2c3d-0000-11e1-9e33-c80aa9429562:1-2';
    const primary = scripted([TABLES, [/CHECKSUM/, at(set, SUMS)]]);
    const replica = scripted([[/WAIT_FOR_EXECUTED_GTID_SET\('3e11fa47/, `@@wait\t0\n${SUMS}@@pos\t9a1b2c3d-0000-11e1-9e33-c80aa9429562:1-2,3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5\n`]]);
    expect(await compareWithPrimary(primary, replica, { ...options, flavor: 'mysql' })).toContain('2 tables equal');
    expect(primary.queries[1]).toContain('@@GLOBAL.gtid_executed');
    expect(replica.queries[0]).toContain('@@GLOBAL.gtid_executed');
    expect(sameGtid('a:1-5,b:1-2', 'b:1-2,\na:1-5')).toBe(true);
    expect(sameGtid('a:1-5', 'a:1-6')).toBe(false);
  });

  test('no application tables: nothing to compare, said so', async () => {
    expect(await compareWithPrimary(scripted([[/information_schema/, '']]), scripted([]), options)).toBe("no application tables on web-01 to compare");
  });
});
