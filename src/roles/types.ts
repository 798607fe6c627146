import type { z } from 'zod';
import type { Facts } from '../facts/index.js';
import type { Host, Inventory } from '../inventory/index.js';
import type { Task } from '../modules/index.js';

/** Vars every role sees besides its own (as in Ansible): the host's inventory name and address. (A type, not an interface: vars pass as a Record.) */
export type BuiltinVars = {
  inventory_hostname: string;
  ansible_host: string;
};

export interface RoleContext<V = Record<string, unknown>> {
  host: Host;
  facts: Facts;
  /** The role's vars as its schema parsed them (defaults filled in), from inventory vars (all < groups < host) then play vars. */
  vars: V & BuiltinVars;
  inventory: Inventory;
  /** Hosts of a group (empty when the group does not exist). */
  hostsIn(group: string): Host[];
  /** Absolute path of a file in this role's templates/ or files/ folder. */
  file(relative: string): string;
}

/** A role's vars: a zod object of its own keys only (hosts carry every role's vars; the others are not its business). */
export type RoleVarsSchema = z.ZodObject<z.ZodRawShape>;

/** One problem with a var: the path inside the vars (["firewall_extra_rules", 0, "port"]) and what is wrong. */
export interface VarIssue {
  path: Array<string | number>;
  message: string;
}

/** The host a role's vars are checked for: its name and groups. */
export type RoleTarget = Pick<Host, 'name' | 'groups'>;

/**
 * A rule about the vars that depends on the host they are checked for (its groups), which a zod
 * schema cannot see; `says` is the rule in words, for the role's documentation.
 */
export interface HostRule<V> {
  says: string;
  check(vars: V, host: RoleTarget): VarIssue[];
}

export interface RoleDef<S extends RoleVarsSchema = RoleVarsSchema> {
  name: string;
  /** What the role does, in a paragraph: the first lines of its generated documentation. */
  description: string;
  /** Every var the role reads: type, default and `.describe()` per var; rules across vars in the schema (see withRules). */
  vars: S;
  /** Rules that depend on the host's groups (checked before any connection, with the schema). */
  hostRules?: Array<HostRule<z.output<S>>>;
  tasks(ctx: RoleContext<z.output<S>>): Task[];
  handlers?(ctx: RoleContext<z.output<S>>): Task[];
  /** A project's role named like a built-in replaces it only when it says so (else loading it is an error). */
  overrides?: boolean;
  /** The role's folder (its templates/ and files/): set by the loader of a project's roles; built-ins live in src/roles/<name>/. */
  dir?: string;
  /** Roles that run before this one on the same hosts (a YAML role's meta/main.yml dependencies). */
  dependencies?: string[];
}
