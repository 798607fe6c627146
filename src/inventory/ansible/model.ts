import { InventoryError } from '../../util/errors.js';
import type { VarDef } from '../vars/values.js';

/**
 * An Ansible inventory as its sources declare it (InventoryData in Ansible): groups with vars,
 * children and hosts; hosts with vars. The INI and YAML parsers fill it; build.ts makes the
 * Inventory from it. Several files (an inventory directory) fill one model.
 */
export interface AnsibleGroup {
  name: string;
  /** Where it is first declared (file:line[:col]). */
  at: string;
  vars: Map<string, VarDef>;
  children: Map<string, string>; // child → where it is declared a child
  hosts: Set<string>;
}

export interface AnsibleHost {
  name: string;
  at: string;
  vars: Map<string, VarDef>;
}

/** Group and host names: what --limit and a play's hosts: can name (an IPv6 address as a host's name too). */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const IPV6ISH = /^[0-9A-Fa-f:.]+$/;

export class AnsibleModel {
  readonly groups = new Map<string, AnsibleGroup>();
  readonly hosts = new Map<string, AnsibleHost>();

  constructor() {
    this.group('all', '(implicit)');
    this.group('ungrouped', '(implicit)');
  }

  group(name: string, at: string): AnsibleGroup {
    let g = this.groups.get(name);
    if (!g) {
      if (!NAME.test(name)) throw new InventoryError(`${at}: invalid group name ${JSON.stringify(name)}: a name is letters, digits, ".", "_" and "-"`);
      g = { name, at, vars: new Map(), children: new Map(), hosts: new Set() };
      this.groups.set(name, g);
    } else if (g.at === '(implicit)' && at !== '(implicit)') g.at = at;
    return g;
  }

  host(name: string, group: string, at: string): AnsibleHost {
    let h = this.hosts.get(name);
    if (!h) {
      if (!NAME.test(name) && !(name.includes(':') && IPV6ISH.test(name))) {
        throw new InventoryError(`${at}: invalid host name ${JSON.stringify(name)}: a name is letters, digits, ".", "_" and "-" (or an IPv6 address)`);
      }
      h = { name, at, vars: new Map() };
      this.hosts.set(name, h);
    }
    this.group(group, at).hosts.add(name);
    return h;
  }

  child(parent: string, child: string, at: string): void {
    if (child === 'all') throw new InventoryError(`${at}: "all" cannot be a child of "${parent}"`);
    this.group(parent, at).children.set(child, at);
  }
}
