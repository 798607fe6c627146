import { selectHosts, type Inventory } from '../inventory/index.js';
import type { Playbook } from './playbook.js';

/**
 * The hosts a play's pattern selects, and the terms of it that name nothing in the inventory. A
 * term that names nothing selects nothing (as in Ansible): the play is skipped, it is no error of
 * a --limit nobody gave. Globs that match nothing are not named (they say "any such host").
 */
export function playTargets(inventory: Inventory, pattern: string): { hosts: string[]; unknown: string[] } {
  const terms = pattern.split(/[,:]/).map((t) => t.trim()).filter(Boolean);
  const names = (t: string) => t.replace(/^[!&]/, '');
  const unknown = terms.filter((t) => !/[*?]/.test(t) && !inventory.hosts.has(names(t)) && !inventory.groups.has(names(t))).map(names);
  const matchesNothing = (t: string) => /[*?]/.test(t) && !selectsAny(inventory, names(t));
  const known = terms.filter((t) => !unknown.includes(names(t)) && !matchesNothing(t));
  // "web:&monitoring" with no monitoring group selects nothing; "web:!monitoring" selects web.
  if (terms.some((t) => t.startsWith('&') && (unknown.includes(names(t)) || matchesNothing(t)))) return { hosts: [], unknown };
  const adds = terms.filter((t) => !t.startsWith('!') && !t.startsWith('&'));
  if (adds.length > 0 && !known.some((t) => !t.startsWith('!') && !t.startsWith('&'))) return { hosts: [], unknown };
  return { hosts: known.length || adds.length === 0 ? selectHosts(inventory, known.join(',') || undefined) : [], unknown };
}

function selectsAny(inventory: Inventory, glob: string): boolean {
  try {
    return selectHosts(inventory, glob).length > 0;
  } catch {
    return false;
  }
}

/**
 * Plays whose hosts pattern names a host or group the inventory does not have: most likely a
 * misspelling. One warning per play (with --strict, one error for them all, exit 4).
 */
export function unknownPlayHosts(inventory: Inventory, playbook: Playbook): string[] {
  return playbook.plays.flatMap((play) => {
    const { unknown } = playTargets(inventory, play.hosts);
    if (unknown.length === 0) return [];
    const what = unknown.map((u) => `"${u}"`).join(', ');
    return [`${play.hostsAt}: play "${play.name}": hosts: ${what} ${unknown.length > 1 ? 'are' : 'is'} neither a host nor a group of inventory ${inventory.name}`];
  });
}
