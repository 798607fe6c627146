import { InputError } from '../util/errors.js';
import type { Inventory } from './loader.js';

function globToRegExp(glob: string): RegExp {
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

/** Host names matched by one term: a host name, a group name, or a glob over both. */
function matchTerm(inv: Inventory, term: string): string[] {
  if (inv.hosts.has(term)) return [term];
  const group = inv.groups.get(term);
  if (group) return group;
  if (/[*?]/.test(term)) {
    const re = globToRegExp(term);
    const out = new Set<string>();
    for (const h of inv.hosts.keys()) if (re.test(h)) out.add(h);
    for (const [g, hs] of inv.groups) if (re.test(g)) hs.forEach((h) => out.add(h));
    if (out.size === 0) throw new InputError(`--limit: "${term}" matches no host or group of inventory ${inv.name}`);
    return [...out];
  }
  throw new InputError(`--limit: "${term}" is neither a host nor a group of inventory ${inv.name}`, `known groups: ${[...inv.groups.keys()].join(', ')}`);
}

/**
 * Select hosts by a pattern like Ansible's: terms separated by "," or ":";
 * a plain term adds, "&term" intersects, "!term" removes. Order follows the inventory.
 */
export function selectHosts(inv: Inventory, pattern: string | undefined): string[] {
  const all = [...inv.hosts.keys()];
  if (!pattern || pattern === 'all' || pattern === '*') return all;
  const terms = pattern.split(/[,:]/).map((t) => t.trim()).filter(Boolean);
  if (terms.length === 0) throw new InputError(`--limit: empty pattern`);
  const plus = terms.filter((t) => !t.startsWith('!') && !t.startsWith('&'));
  let chosen = new Set<string>(plus.length ? plus.flatMap((t) => matchTerm(inv, t)) : all);
  for (const t of terms.filter((t) => t.startsWith('&'))) {
    const keep = new Set(matchTerm(inv, t.slice(1)));
    chosen = new Set([...chosen].filter((h) => keep.has(h)));
  }
  for (const t of terms.filter((t) => t.startsWith('!'))) {
    for (const h of matchTerm(inv, t.slice(1))) chosen.delete(h);
  }
  return all.filter((h) => chosen.has(h));
}
