import { prepareHosts, selectHosts, type Host, type Inventory } from '../inventory/index.js';
import { maskDeep } from '../util/secrets.js';
import { loadInventory } from './load.js';
import { requireInventory } from './options.js';
import { printOut } from './output.js';

/*
 * `provision inventory`: what was loaded (hosts, groups, connection settings, with --vars the
 * resolved vars, secrets masked) without connecting. Its options (--vault-password-file, where
 * warnings go) are in options.ts, shared by every command that reads an inventory.
 */

function connectionLine(h: Host): string {
  const c = h.connection;
  const parts = [`${c.user}@${h.address}:${c.port}`];
  if (c.jump) parts.push(`via ${c.jump}`);
  if (c.become) parts.push(`become ${c.becomeUser}`);
  if (c.identityFile) parts.push(`key ${c.identityFile}`);
  if (c.knownHosts) parts.push(`known_hosts ${c.knownHosts}`);
  return parts.join(', ');
}

export function inventoryReport(inv: Inventory, names: string[], withVars: boolean): Record<string, unknown> {
  const hosts: Record<string, unknown> = {};
  for (const n of names) {
    const h = inv.hosts.get(n)!;
    const { becomePassword, identityPassphrase: _p, ...connection } = h.connection;
    hosts[n] = {
      address: h.address,
      groups: h.groups,
      connection: { ...connection, ...(becomePassword ? { becomePassword: true } : {}) },
      ...(withVars ? { vars: { ...h.vars } } : {}),
    };
  }
  return maskDeep({ inventory: inv.file, groups: Object.fromEntries(inv.groups), hosts, warnings: inv.warnings ?? [] });
}

/** `provision inventory`: the loaded inventory, connecting to nothing. */
export function inventoryCommand(o: { inventory?: string; limit?: string; json?: boolean; vars?: boolean }): void {
  const inv = loadInventory(requireInventory(o));
  const names = selectHosts(inv, o.limit);
  prepareHosts(inv, names, { vars: Boolean(o.vars) });
  const report = inventoryReport(inv, names, Boolean(o.vars));
  if (o.json) {
    printOut(JSON.stringify(report));
    return;
  }
  const out: string[] = [`inventory ${inv.file}`, 'groups:'];
  for (const [g, hs] of inv.groups) out.push(`  ${g}: ${hs.join(', ') || '(no hosts)'}`);
  out.push('hosts:');
  for (const n of names) {
    const h = inv.hosts.get(n)!;
    out.push(`  ${n}: ${connectionLine(h)}`);
    if (o.vars) for (const [k, v] of Object.entries((report.hosts as Record<string, { vars: Record<string, unknown> }>)[n]!.vars)) out.push(`    ${k}: ${JSON.stringify(v)}`);
  }
  printOut(out.join('\n'));
}
