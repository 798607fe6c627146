/**
 * After a seed: the replica has caught up with its primary and holds the same application tables.
 * "Both threads Yes" at first sight says replication started, not that the copy was complete: the
 * tables are compared with CHECKSUM TABLE on both sides at one GTID position.
 *
 * The primary keeps taking writes, so a position and the checksums taken at it must belong
 * together: the primary's position is read before and after its checksums (equal: nothing was
 * written in between); the replica waits for that position on the server (MASTER_GTID_WAIT /
 * WAIT_FOR_EXECUTED_GTID_SET, bounded), checksums, and reads its position again (still the same:
 * nothing newer was applied in between). An attempt where either moved is repeated; a primary busy
 * in every attempt is reported as not compared, never as equal.
 */
import { ModuleError } from '../../util/errors.js';
import { parseRows, sqlIdent, sqlString, SYSTEM_SCHEMAS_SQL, type MysqlFlavor } from './client.js';

/** Runs SQL through a host's batch client and returns its stdout; throws when the client fails. */
export type SqlRunner = (sql: string) => Promise<string>;

const POSITION = '@@pos';
const WAITED = '@@wait';
/** Longest single wait on the replica (a read on a host is bounded by probe_timeout, 60 s by default). */
const WAIT_STEP_S = 20;

/** The primary's executed position, the replica's applied position. */
function positionSql(f: MysqlFlavor, side: 'primary' | 'replica'): string {
  if (f === 'mysql') return '@@GLOBAL.gtid_executed';
  return side === 'primary' ? '@@GLOBAL.gtid_binlog_pos' : '@@GLOBAL.gtid_slave_pos';
}

/** Waits on the server for a position; 0 when reached (MariaDB -1, MySQL 1 on timeout). */
function waitSql(f: MysqlFlavor, position: string, seconds: number): string {
  return f === 'mariadb' ? `MASTER_GTID_WAIT(${sqlString(position)}, ${seconds})` : `WAIT_FOR_EXECUTED_GTID_SET(${sqlString(position)}, ${seconds})`;
}

/** GTID positions / sets compared as sets: order and line breaks differ between servers. */
export function sameGtid(a: string, b: string): boolean {
  const norm = (s: string) =>
    s
      .replace(/\s+/g, '')
      .split(',')
      .filter(Boolean)
      .sort()
      .join(',');
  return norm(a) === norm(b);
}

const TABLES_SQL = `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ${SYSTEM_SCHEMAS_SQL} ORDER BY 1, 2;`;

interface Reading {
  positions: string[];
  waited?: string;
  checksums: Map<string, string | null>;
}

function parseReading(stdout: string): Reading {
  const out: Reading = { positions: [], checksums: new Map() };
  for (const row of parseRows(stdout)) {
    if (row[0] === POSITION) out.positions.push(row[1] ?? '');
    else if (row[0] === WAITED) out.waited = row[1] ?? '';
    else if (row[0] !== null && row[0] !== undefined) out.checksums.set(row[0], row[1] ?? null);
  }
  return out;
}

export interface CompareOptions {
  flavor: MysqlFlavor;
  primaryName: string;
  /** Epoch ms after which the replica's wait gives up. */
  deadline: number;
  attempts?: number;
}

/** Compares the primary's application tables with the replica's; the note on success, a ModuleError on a difference. */
export async function compareWithPrimary(primary: SqlRunner, replica: SqlRunner, o: CompareOptions): Promise<string> {
  const tables = parseRows(await primary(TABLES_SQL)).map((r) => `${sqlIdent(r[0] ?? '')}.${sqlIdent(r[1] ?? '')}`);
  if (tables.length === 0) return `no application tables on ${o.primaryName} to compare`;
  const checksum = `CHECKSUM TABLE ${tables.join(', ')};`;
  const attempts = o.attempts ?? 5;
  const started = Date.now();
  let moved = 0;
  while (moved < attempts) {
    const atPrimary = parseReading(
      await primary(`SELECT '${POSITION}', ${positionSql(o.flavor, 'primary')};\n${checksum}\nSELECT '${POSITION}', ${positionSql(o.flavor, 'primary')};\n`),
    );
    const [before, after] = atPrimary.positions;
    if (before === undefined || after === undefined || !sameGtid(before, after)) {
      moved++; // written to during the checksums
      continue;
    }
    // Waited for in steps, each well inside the bound of one read on the host; the deadline bounds them all.
    const seconds = Math.min(WAIT_STEP_S, Math.max(1, Math.ceil((o.deadline - Date.now()) / 1000)));
    const atReplica = parseReading(
      await replica(`SELECT '${WAITED}', ${waitSql(o.flavor, before, seconds)};\n${checksum}\nSELECT '${POSITION}', ${positionSql(o.flavor, 'replica')};\n`),
    );
    if (atReplica.waited !== '0') {
      if (Date.now() < o.deadline) continue;
      throw new ModuleError(
        `the replica did not reach ${o.primaryName}'s GTID position ${before || '(empty)'} within ${Math.round((Date.now() - started) / 1000)} s (wait returned ${atReplica.waited ?? 'nothing'})`,
      );
    }
    const replicaAt = atReplica.positions[0];
    if (replicaAt === undefined || !sameGtid(replicaAt, before)) {
      moved++; // applied newer transactions meanwhile
      continue;
    }
    const differ = [...atPrimary.checksums].filter(([t, sum]) => atReplica.checksums.get(t) !== sum);
    if (differ.length) {
      const shown = differ.map(([t, sum]) => `${t} (primary ${sum ?? 'missing'}, replica ${atReplica.checksums.get(t) ?? 'missing'})`);
      throw new ModuleError(`at GTID position ${before || '(empty)'}, the replica's tables differ from ${o.primaryName}'s: ${shown.join(', ')}`);
    }
    return `${atPrimary.checksums.size} table${atPrimary.checksums.size === 1 ? '' : 's'} equal to ${o.primaryName}'s (CHECKSUM TABLE at GTID ${before || '(empty)'})`;
  }
  return `tables not compared: ${o.primaryName} took writes during each of ${attempts} attempts`;
}
