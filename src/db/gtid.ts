/**
 * MariaDB GTID positions (`domain-server-seq`, comma separated: gtid_binlog_pos, gtid_slave_pos,
 * Gtid_IO_Pos) compared without asking a server: which replica is the most advanced, and what one
 * position holds that another does not. In one domain the sequence numbers are ordered (the role sets
 * gtid_strict_mode), so a position is "at least" another when it is so in every domain the other has.
 * MySQL GTID sets (uuid:1-42) are compared by a server (GTID_SUBSET), not here.
 */
import { InputError } from '../util/errors.js';

export interface Gtid {
  domain: number;
  server: number;
  seq: number;
}

/** A position's GTIDs; empty text, an empty position. Throws on anything that is not `d-s-n[,d-s-n…]`. */
export function parseGtids(text: string): Gtid[] {
  const trimmed = text.replace(/\s+/g, '');
  if (trimmed === '') return [];
  return trimmed.split(',').map((part) => {
    const m = /^(\d+)-(\d+)-(\d+)$/.exec(part);
    if (!m) throw new InputError(`not a MariaDB GTID position: "${text}" (expected domain-server-sequence, comma separated)`);
    return { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) };
  });
}

/** The highest sequence number per domain (a binlog position lists one GTID per domain and server). */
function perDomain(gtids: Gtid[]): Map<number, Gtid> {
  const out = new Map<number, Gtid>();
  for (const g of gtids) if ((out.get(g.domain)?.seq ?? -1) < g.seq) out.set(g.domain, g);
  return out;
}

/** `a` holds every transaction `b` holds (each of b's domains, a sequence number as high). */
export function gtidAtLeast(a: string, b: string): boolean {
  const da = perDomain(parseGtids(a));
  for (const [domain, g] of perDomain(parseGtids(b))) if ((da.get(domain)?.seq ?? -1) < g.seq) return false;
  return true;
}

/** How many transactions `newer` holds beyond `older`, per domain, as readable ranges ("0-11-43..0-11-47 (5)"). */
export function gtidsBeyond(newer: string, older: string): { count: number; ranges: string[] } {
  const dOld = perDomain(parseGtids(older));
  const ranges: string[] = [];
  let count = 0;
  for (const [domain, g] of perDomain(parseGtids(newer))) {
    const from = (dOld.get(domain)?.seq ?? 0) + 1;
    if (g.seq < from) continue;
    const n = g.seq - from + 1;
    count += n;
    ranges.push(n === 1 ? `${domain}-${g.server}-${g.seq} (1)` : `${domain}-${g.server}-${from}..${domain}-${g.server}-${g.seq} (${n})`);
  }
  return { count, ranges };
}
