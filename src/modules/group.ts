import { z } from 'zod';
import type { ProbeResult } from '../facts/index.js';
import { shellJoin } from '../util/quote.js';
import type { ModuleDef, Plan } from './types.js';

/** A user or group name as useradd/groupadd accept it (never starting with "-": argv would read it as an option). */
export const accountName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/, 'a user or group name (letters, digits, _ . -; at most 32)');

/**
 * The owner or group of a file, as chown takes it: a name (local, or from LDAP and the like, so wider
 * than `accountName`) or a numeric id. Refused: a leading "-" (chown would take `--reference=…` as
 * an option), ":" (it splits owner from group), blanks.
 */
export const ownerName = z.string().regex(/^[^-:\s][^:\s]*$/, 'a user or group name or a numeric id (not starting with -, no : or blanks)');

const params = z.strictObject({
  name: accountName,
  state: z.enum(['present', 'absent']).default('present'),
  gid: z.number().int().min(0).optional(),
  system: z.boolean().default(false),
});
export type GroupParams = z.input<typeof params>;

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** `getent group a b …` output (one line per group found). */
export function parseGroupLines(r: ProbeResult | undefined): Map<string, GroupEntry> {
  const out = new Map<string, GroupEntry>();
  for (const line of (r?.stdout ?? '').split('\n')) {
    const f = line.trim().split(':');
    if (f.length >= 4 && f[0]) out.set(f[0], { name: f[0], gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) });
  }
  return out;
}

/** One probe reads every named group (facts are read once per run; groups made since would be missed). */
export function groupsProbe(names: string[]) {
  const sorted = [...new Set(names)].sort();
  return { key: `groups:${sorted.join(',')}`, script: `getent group ${shellJoin(sorted)}` };
}

export const groupModule: ModuleDef<z.output<typeof params>> = {
  name: 'group',
  schema: params,
  probes: (p) => [groupsProbe([p.name])],
  plan(p, ctx): Plan {
    const have = parseGroupLines(ctx.results.get(groupsProbe([p.name]).key)).get(p.name);
    if (p.state === 'absent') {
      if (!have) return { changes: [], commands: [] };
      return {
        changes: [{ kind: 'group', target: p.name, action: 'remove' }],
        commands: [{ kind: 'shell', cmd: shellJoin(['groupdel', p.name]) }],
        predict: (s) => void s.groups.delete(p.name),
      };
    }
    if (!have) {
      // In a dry run, a group an earlier task would create counts as there.
      if (ctx.predicted.groups.has(p.name)) return { changes: [], commands: [] };
      const args = ['groupadd'];
      if (p.system) args.push('--system');
      if (p.gid !== undefined) args.push('--gid', String(p.gid));
      args.push(p.name);
      return {
        changes: [{ kind: 'group', target: p.name, action: `create${p.gid !== undefined ? ` (gid ${p.gid})` : ''}` }],
        commands: [{ kind: 'shell', cmd: shellJoin(args) }],
        predict: (s) => void s.groups.add(p.name),
      };
    }
    if (p.gid !== undefined && have.gid !== p.gid) {
      return {
        changes: [{ kind: 'group', target: p.name, action: `gid ${have.gid} → ${p.gid}` }],
        commands: [{ kind: 'shell', cmd: shellJoin(['groupmod', '--gid', String(p.gid), p.name]) }],
      };
    }
    return { changes: [], commands: [] };
  },
};
