import path from 'node:path';
import { InventoryError } from '../../util/errors.js';
import { expandHome, resolveConnection } from '../connection.js';
import type { LoadContext } from '../context.js';
import { GroupCycle, resolveMembership } from '../groups.js';
import type { Host, Inventory, ResolvedConnection } from '../model.js';
import { varsLayersFor } from '../vars-files.js';
import { VarScope } from '../vars/resolver.js';
import type { VarDef, VarLayer } from '../vars/values.js';
import { ansibleConnection, warnUnknownAnsibleVars } from './connection-vars.js';
import type { AnsibleModel } from './model.js';

/*
 * An Ansible inventory (one file, or a directory of them) as an Inventory. Membership as
 * Ansible's reconcile_inventory makes it: a group without a parent is a child of `all`; a host in
 * no group but `all` is in `ungrouped` (listed only when it has hosts).
 *
 * Vars, lowest first, as Ansible's VariableManager merges them for a host (a later source replaces
 * a var of an earlier one):
 *   1. the inventory's vars of `all`            (INI [all:vars], YAML all: vars:)
 *   2. the inventory's vars of each other group, parents before children (by depth, then
 *      ansible_group_priority, then name)
 *   3. group_vars/all                            (next to the inventory file, or in its directory)
 *   4. group_vars/<group>, in the same group order
 *   5. the inventory's vars of the host          (INI host line, YAML hosts: entry, host:port)
 *   6. host_vars/<host>
 * ansible_* connection vars are read from the result (connection-vars.ts) and left out of host.vars.
 */

export interface AnsibleSource {
  /** What the inventory is called (--inventory's file or directory). */
  file: string;
  /** Where group_vars/ and host_vars/ are looked for. */
  baseDir: string;
}

export function buildAnsibleInventory(model: AnsibleModel, source: AnsibleSource, ctx: LoadContext): Inventory {
  const { groups: defs, hosts: hostDefs } = model;
  if (hostDefs.size === 0) throw new InventoryError(`${source.file}: the inventory has no hosts`);
  for (const name of hostDefs.keys()) {
    if (defs.has(name)) ctx.warn(`both:${name}`, `${hostDefs.get(name)!.at}: "${name}" is both a host and a group; --limit ${name} means the host`);
  }

  // Membership: all ← every group without a parent; ungrouped ← hosts in no other group.
  const parents = new Map<string, string[]>();
  for (const g of defs.values()) {
    for (const [child, at] of g.children) {
      if (!defs.has(child)) throw new InventoryError(`${at}: unknown group "${child}"`);
      if (g.name !== 'all') parents.set(child, [...(parents.get(child) ?? []), g.name]);
    }
  }
  const hostNames = [...hostDefs.keys()];
  const ungrouped = defs.get('ungrouped')!;
  for (const h of hostNames) {
    const inOther = [...defs.values()].some((g) => g.name !== 'all' && g.name !== 'ungrouped' && g.hosts.has(h));
    if (inOther) ungrouped.hosts.delete(h);
    else ungrouped.hosts.add(h);
  }
  const direct = new Map<string, Set<string>>();
  for (const g of defs.values()) {
    if (g.name === 'all' || (g.name === 'ungrouped' && g.hosts.size === 0 && g.vars.size === 0 && g.children.size === 0)) continue;
    direct.set(g.name, new Set(g.hosts));
  }

  // Sort order of groups of one depth: ansible_group_priority (inventory vars only, as Ansible reads it), then name.
  const priority = new Map<string, number>();
  for (const g of defs.values()) {
    const p = g.vars.get('ansible_group_priority');
    if (!p) continue;
    const n = typeof p.value === 'number' ? p.value : typeof p.value === 'string' && /^-?\d+$/.test(p.value.trim()) ? Number(p.value) : NaN;
    if (!Number.isInteger(n)) throw new InventoryError(`${p.at}: ansible_group_priority: expected a whole number, got ${JSON.stringify(p.value)}`);
    priority.set(g.name, n);
  }
  const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const compare = (a: string, b: string) => (priority.get(a) ?? 1) - (priority.get(b) ?? 1) || byCodePoint(a, b);
  let membership;
  try {
    membership = resolveMembership({ hosts: hostNames, direct, parents, compare });
  } catch (err) {
    if (err instanceof GroupCycle) throw new InventoryError(`${defs.get(err.cycle[0]!)!.at}: ${err.message}`);
    throw err;
  }
  const { hostGroups, groups } = membership;
  if (groups.get('ungrouped')?.length === 0) groups.delete('ungrouped');

  // Vars sources. Plain vars files are read now (their mistakes found before anything else happens);
  // encrypted ones when a host that uses them is first resolved.
  const warn = (key: string, message: string) => ctx.warn(key, message);
  const onVars = (vars: ReadonlyMap<string, VarDef>) => warnUnknownAnsibleVars(vars, warn);
  const filesCtx = { keyring: ctx.keyring, onVars };
  const constant = (vars: ReadonlyMap<string, VarDef>): VarLayer => {
    onVars(vars);
    return () => vars;
  };
  const groupInventoryLayer = new Map([...defs.values()].map((g) => [g.name, constant(g.vars)]));
  const groupFileLayers = new Map<string, VarLayer[]>();
  const groupFiles = (g: string) => groupFileLayers.get(g) ?? groupFileLayers.set(g, varsLayersFor(path.join(source.baseDir, 'group_vars'), g, filesCtx)).get(g)!;

  const scope = new VarScope({ hostGroups, groups, hidden: (n) => n.startsWith('ansible_'), onSecret: (s) => ctx.addSecret(s) });
  const hosts = new Map<string, Host>();
  const resolvePath = (p: string) => path.resolve(expandHome(p));
  for (const name of hostNames) {
    const gs = hostGroups.get(name)!;
    const layers: VarLayer[] = [
      ...gs.map((g) => groupInventoryLayer.get(g)!),
      ...gs.flatMap((g) => groupFiles(g)),
      constant(hostDefs.get(name)!.vars),
      ...varsLayersFor(path.join(source.baseDir, 'host_vars'), name, filesCtx),
    ];
    const hv = scope.add(name, layers);
    // Where and how to connect: worked out from the host's vars when first asked (they may be in a vault file).
    let reached: { address: string; connection: ResolvedConnection } | undefined;
    const reach = () => {
      if (!reached) {
        const a = ansibleConnection(hv, warn);
        reached = resolveConnection({
          name,
          address: a.address,
          settings: a.settings,
          resolvePath,
          sshConfig: ctx.sshConfig(a.sshConfigFile === undefined ? undefined : a.sshConfigFile === false ? false : resolvePath(a.sshConfigFile), process.cwd()),
          isInventoryHost: (n) => hostDefs.has(n),
          becomePassword: a.becomePassword,
          jumpAt: () => a.jumpAt ?? name,
          envChannel: ctx.channel,
        });
      }
      return reached;
    };
    hosts.set(name, {
      name,
      groups: gs,
      vars: hv.vars,
      get address() {
        return reach().address;
      },
      get connection() {
        return reach().connection;
      },
    });
  }
  const inventoryName = path.basename(source.file).replace(/\.(ya?ml|json|ini|cfg)$/, '');
  return { name: inventoryName, file: source.file, hosts, groups, secrets: ctx.secrets, warnings: ctx.warnings, varSource: (h, n) => scope.source(h, n) };
}
