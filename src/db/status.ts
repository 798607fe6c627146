/**
 * `provision db status`: who is the primary (writable, not replicating), each replica's source,
 * threads, lag and GTID positions. Read from the servers themselves, never from the inventory: the
 * inventory says what should be, the servers what is.
 */
import type { ServerState } from './server.js';

export interface ReplicaReport {
  /** The source it replicates from (address:port), null when replication is not configured. */
  source: string | null;
  /** The source's inventory name when an inventory host has that address. */
  sourceHost: string | null;
  io: string | null;
  sql: string | null;
  lagSeconds: number | null;
  /** GTIDs received from the source (MariaDB Gtid_IO_Pos, MySQL Retrieved_Gtid_Set). */
  received: string | null;
  /** GTIDs applied (MariaDB gtid_slave_pos, MySQL gtid_executed). */
  executed: string;
  readOnly: boolean;
  lastIoError: string | null;
  lastSqlError: string | null;
}

export interface DbStatus {
  /** The one writable server that does not replicate; null when there is none or more than one. */
  primary: string | null;
  /** The primary's executed GTIDs. */
  primaryExecuted: string | null;
  replicas: Record<string, ReplicaReport>;
  unreachable: Record<string, string>;
  /** What is wrong with the topology (two writers, none, a replica stopped): empty when healthy. */
  problems: string[];
  /** Two writable servers: a fact whatever else could not be read. */
  twoWriters: boolean;
}

const isWritable = (s: ServerState) => !s.readOnly && !s.superReadOnly;

export function summarize(states: ServerState[], unreachable: Record<string, string> = {}): DbStatus {
  const byAddress = new Map(states.map((s) => [s.address, s.name]));
  const writable = states.filter(isWritable);
  const writers = writable.filter((s) => !s.replica);
  const problems: string[] = [];
  if (writable.length > 1) problems.push(`${writable.length} writable servers: ${writable.map((s) => s.name).join(', ')} (exactly one must be)`);
  else if (writable.length === 0 && Object.keys(unreachable).length > 0) problems.push('no writable server among those that answered');
  else if (writable.length === 0) problems.push('no writable server: no primary (every server is read-only)');
  else if (writers.length === 0) problems.push(`the only writable server, ${writable[0]!.name}, replicates from ${writable[0]!.replica!.host}: no primary`);
  const primary = writable.length === 1 && writers.length === 1 ? writers[0]! : undefined;
  const replicas: Record<string, ReplicaReport> = {};
  for (const s of states) {
    if (s === primary) continue;
    const r = s.replica;
    replicas[s.name] = {
      source: r ? `${r.host}:${r.port}` : null,
      sourceHost: r ? (byAddress.get(r.host) ?? null) : null,
      io: r?.io ?? null,
      sql: r?.sql ?? null,
      lagSeconds: r?.lag === null || r?.lag === undefined || r.lag === '' ? null : Number(r.lag),
      received: r?.received ?? null,
      executed: r?.applied ?? s.executed,
      readOnly: s.readOnly,
      lastIoError: r?.ioErrno ? `${r.ioErrno}: ${r.ioError}` : null,
      lastSqlError: r?.sqlErrno ? `${r.sqlErrno}: ${r.sqlError}` : null,
    };
    if (!r) problems.push(`${s.name} is not the primary and does not replicate`);
    else {
      if (r.io !== 'Yes' || r.sql !== 'Yes') problems.push(`${s.name}: replication not running (IO ${r.io || 'off'}, SQL ${r.sql || 'off'})`);
      if (primary && r.host !== primary.address) problems.push(`${s.name} replicates from ${r.host}, not from the primary ${primary.name} (${primary.address})`);
    }
  }
  for (const [h, why] of Object.entries(unreachable)) problems.push(`${h} unreachable: ${why}`);
  return { primary: primary?.name ?? null, primaryExecuted: primary?.executed ?? null, replicas, unreachable, problems, twoWriters: writable.length > 1 };
}

/** The report for a terminal: the primary, one line per replica, then the problems. */
export function renderStatus(s: DbStatus): string {
  const lines = [s.primary ? `primary: ${s.primary} (writable, not replicating; executed ${s.primaryExecuted || '(none)'})` : 'primary: NONE'];
  for (const [name, r] of Object.entries(s.replicas)) {
    lines.push(
      r.source === null
        ? `replica ${name}: not replicating (read_only ${r.readOnly ? 'ON' : 'OFF'}; executed ${r.executed || '(none)'})`
        : `replica ${name}: from ${r.sourceHost ?? r.source} (${r.source}), IO ${r.io}, SQL ${r.sql}, lag ${r.lagSeconds ?? 'NULL'} s, received ${r.received || '(none)'}, executed ${r.executed || '(none)'}` +
            (r.lastIoError ? `, last IO error ${r.lastIoError}` : '') +
            (r.lastSqlError ? `, last SQL error ${r.lastSqlError}` : ''),
    );
  }
  for (const p of s.problems) lines.push(`PROBLEM: ${p}`);
  return lines.join('\n');
}
