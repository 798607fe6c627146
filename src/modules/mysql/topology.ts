/**
 * mysql_topology: the database primary recorded on this host agrees with the inventory.
 *
 * `provision db switchover` moves the writer and records the new primary on every database host
 * (PRIMARY_RECORD). A converge from an inventory that still names the old primary would turn the
 * servers back (the old primary's config without read_only, the new one a replica again: two
 * writers, or a promoted server re-seeded). This guard is the mysql role's first task: when the
 * record names another primary than the inventory's db_primary group it fails, before anything of
 * the role ran, telling the user which inventory change to make. No record (never switched over):
 * the inventory decides, as before.
 */
import { z } from 'zod';
import { ModuleError } from '../../util/errors.js';
import { probe, type ModuleDef, type Plan } from '../contract.js';
import type { ProbeResult } from '../../facts/index.js';
import { quote } from '../../util/quote.js';

/** Where the tool records the current primary on each database host (written by `provision db switchover`). */
export const PRIMARY_RECORD = '/var/lib/provision/db-primary.json';

/** The record: the primary by inventory name and private address, when and by what it became so. */
export const primaryRecord = z.object({
  primary: z.string().min(1),
  address: z.string().min(1),
  since: z.string(),
  by: z.string(),
});
export type PrimaryRecord = z.infer<typeof primaryRecord>;

const ABSENT = '@@absent';

const topologyParams = z.strictObject({
  /** The primary as the inventory says: the one host of db_primary (inventory name). */
  primary: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'an inventory host name'),
  /** The replicas as the inventory says (named in the refusal: the inventory change to make). */
  replicas: z.array(z.string()).default([]),
});
export type MysqlTopologyParams = z.input<typeof topologyParams>;

export const recordProbe = probe('mysql:topology:record', `if [ -e ${quote(PRIMARY_RECORD)} ]; then cat ${quote(PRIMARY_RECORD)}; else echo ${ABSENT}; fi`, (r: ProbeResult | undefined) => r);

/** The record's content, undefined when there is none; a record that does not parse is an error (never "no record"). */
export function parseRecord(stdout: string): PrimaryRecord | undefined {
  if (stdout.trim() === ABSENT) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    throw new ModuleError(`${PRIMARY_RECORD} is not JSON: ${stdout.trim().slice(0, 80)}`);
  }
  const r = primaryRecord.safeParse(json);
  if (!r.success) throw new ModuleError(`${PRIMARY_RECORD} is not a primary record (primary, address, since, by): ${stdout.trim().slice(0, 80)}`);
  return r.data;
}

export const mysqlTopologyModule: ModuleDef<z.output<typeof topologyParams>> = {
  name: 'mysql_topology',
  schema: topologyParams,
  probes: () => [recordProbe],
  plan(p, ctx): Plan {
    const r = ctx.read(recordProbe);
    if (!r || r.code !== 0) throw new ModuleError(`cannot read ${PRIMARY_RECORD}: ${(r?.stdout ?? 'no probe result').trim().split('\n').slice(-2).join(' ')}`);
    const record = parseRecord(r.stdout);
    if (!record) return { changes: [], commands: [], note: 'no primary recorded on this host: the inventory decides' };
    if (record.primary === p.primary) return { changes: [], commands: [], note: `the recorded primary (${record.primary}, ${record.by} ${record.since}) is the inventory's` };
    const others = [...new Set([...p.replicas, p.primary])].filter((h) => h !== record.primary).sort();
    throw new ModuleError(
      `refusing to converge the database: ${record.primary} (${record.address}) is the primary recorded on this host (${record.by} ${record.since}), ` +
        `but the inventory puts ${p.primary} in db_primary; converging would turn the servers back. Nothing was changed. ` +
        `Update the inventory: db_primary: [${record.primary}]${others.length ? `, db_replica: [${others.join(', ')}]` : ''} ` +
        `(or move the writer back first: provision db switchover --to ${p.primary})`,
    );
  },
};
