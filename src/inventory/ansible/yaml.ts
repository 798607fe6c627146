import { InventoryError } from '../../util/errors.js';
import { fieldName, whereIs, whereKey, type LocatedYaml } from '../../util/yaml.js';
import type { VaultKeyring } from '../vault/keyring.js';
import { varsOfMap } from '../vars-files.js';
import { expandHostPattern, HostPatternError } from './host-pattern.js';
import type { AnsibleModel } from './model.js';

/*
 * Ansible's YAML inventory (plugins/inventory/yaml.py): top-level keys are groups (usually `all`);
 * a group has `hosts:` (host entry → its vars), `children:` (group → its definition) and `vars:`.
 * A section given as a string names one entry. Ansible skips other keys with a warning; here they
 * are errors with file:line:col, as a misspelt `children:` would silently drop groups.
 */

const SECTIONS = ['hosts', 'children', 'vars'];

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

function describe(v: unknown): string {
  return Array.isArray(v) ? 'a list' : v === null ? 'nothing' : typeof v === 'object' ? 'a tagged value' : `${typeof v} ${JSON.stringify(v)}`;
}

export function parseAnsibleYaml(src: LocatedYaml, model: AnsibleModel, keyring: VaultKeyring): void {
  const data = src.data;
  if (!isMap(data)) throw new InventoryError(`${whereIs(src, [])}: (top level): an Ansible YAML inventory is a map of groups, got ${describe(data)}`);
  if ('plugin' in data) throw new InventoryError(`${whereKey(src, ['plugin'])}: plugin: inventory plugins (dynamic inventories) are not supported; export the inventory with ansible-inventory --list --yaml`);

  const hosts = (group: string, entry: string, hostVars: unknown, hp: Array<string | number>): void => {
    let expanded: { hosts: string[]; port?: number };
    try {
      expanded = expandHostPattern(entry);
    } catch (err) {
      if (err instanceof HostPatternError) throw new InventoryError(`${whereKey(src, hp)}: ${fieldName(hp)}: ${err.message}`);
      throw err;
    }
    const hv = varsOfMap(src, hp, hostVars, keyring, 'host vars');
    for (const h of expanded.hosts) {
      const host = model.host(h, group, whereKey(src, hp));
      if (expanded.port !== undefined) host.vars.set('ansible_port', { value: expanded.port, at: whereKey(src, hp) });
      for (const [k, d] of hv) host.vars.set(k, d);
    }
  };

  const group = (name: string, def: unknown, p: Array<string | number>, parent?: string): void => {
    const at = whereKey(src, p);
    model.group(name, at);
    if (parent) model.child(parent, name, at);
    if (def === null || def === undefined) return;
    if (!isMap(def)) throw new InventoryError(`${whereIs(src, p)}: ${fieldName(p)}: a group is a map of hosts:, children: and vars:, got ${describe(def)}`);
    for (const key of Object.keys(def)) {
      if (!SECTIONS.includes(key)) {
        throw new InventoryError(`${whereKey(src, [...p, key])}: ${fieldName([...p, key])}: unknown key "${key}" (a group has hosts:, children: and vars:)`);
      }
    }
    const section = (key: string): Record<string, unknown> | undefined => {
      const v = def[key];
      if (v === null || v === undefined) return undefined;
      if (typeof v === 'string') return { [v]: null };
      if (!isMap(v)) throw new InventoryError(`${whereIs(src, [...p, key])}: ${fieldName([...p, key])}: expected a map, got ${describe(v)}`);
      return v;
    };
    // In the document's order, as Ansible reads them (it decides the order of hosts and groups).
    for (const key of Object.keys(def)) {
      if (key === 'vars') {
        for (const [k, d] of varsOfMap(src, [...p, 'vars'], section('vars'), keyring)) model.group(name, at).vars.set(k, d);
      } else if (key === 'children') {
        for (const [child, childDef] of Object.entries(section('children') ?? {})) group(child, childDef, [...p, 'children', child], name);
      } else {
        for (const [entry, hostVars] of Object.entries(section('hosts') ?? {})) hosts(name, entry, hostVars, [...p, 'hosts', entry]);
      }
    }
  };
  for (const [name, def] of Object.entries(data)) group(name, def, [name]);
}
