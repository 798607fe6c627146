import { compareText } from '../util/compare-text.js';

/**
 * Group membership, the same for every inventory format: each host's groups with their ancestors
 * (parents before children, so a child group's vars win), and each group's hosts.
 */
export interface GroupGraph {
  /** Host names, in inventory order. */
  hosts: string[];
  /** Every group (without `all`) → the hosts put in it directly. */
  direct: Map<string, Set<string>>;
  /** child group → its parent groups (without `all`). */
  parents: Map<string, string[]>;
  /** Order among groups of the same depth (default: by name); Ansible sorts by ansible_group_priority, then name. */
  compare?: (a: string, b: string) => number;
}

export interface Membership {
  /** host → ['all', ...its groups and their ancestors, parents first]. */
  hostGroups: Map<string, string[]>;
  /** group → hosts in it directly or through children; `all` first. */
  groups: Map<string, string[]>;
}

/** Thrown for a cycle among children, as parent → … → parent, for the caller to place in its file. */
export class GroupCycle extends Error {
  constructor(readonly cycle: string[]) {
    super(`children form a cycle (${cycle.join(' → ')})`);
  }
}

export function resolveMembership(g: GroupGraph): Membership {
  const ancestorsOf = new Map<string, string[]>();
  const ancestors = (group: string, seen: string[] = []): string[] => {
    if (seen.includes(group)) {
      // seen runs child → parent; the cycle is printed parent → child, as children: lists read.
      throw new GroupCycle([...seen.slice(seen.indexOf(group)), group].reverse());
    }
    const known = ancestorsOf.get(group);
    if (known) return known;
    const ps = g.parents.get(group) ?? [];
    const out = [...ps, ...ps.flatMap((p) => ancestors(p, [...seen, group]))];
    ancestorsOf.set(group, out);
    return out;
  };
  // Every group, not only those with hosts: a cycle among empty groups is still a mistake.
  for (const group of g.direct.keys()) ancestors(group);

  const depths = new Map<string, number>();
  const depth = (group: string): number => {
    let d = depths.get(group);
    if (d === undefined) {
      d = Math.max(0, ...(g.parents.get(group) ?? []).map((p) => depth(p) + 1));
      depths.set(group, d);
    }
    return d;
  };
  const compare = g.compare ?? compareText;

  const hostGroups = new Map<string, string[]>();
  for (const h of g.hosts) {
    const mine = [...g.direct.entries()].filter(([, hs]) => hs.has(h)).map(([group]) => group);
    const all = new Set<string>(mine);
    for (const group of mine) for (const a of ancestors(group)) all.add(a);
    all.delete('all');
    hostGroups.set(h, ['all', ...[...all].sort((a, b) => depth(a) - depth(b) || compare(a, b))]);
  }
  const groups = new Map<string, string[]>([['all', [...g.hosts]]]);
  for (const group of g.direct.keys()) if (group !== 'all') groups.set(group, g.hosts.filter((h) => hostGroups.get(h)!.includes(group)));
  return { hostGroups, groups };
}
