import type { RoleDef } from './types.js';

/** The built-in roles (src/roles/builtin.ts, a table generated at build time registers them). */
const builtins = new Map<string, RoleDef>();
/** Roles registered by code (tests, embedders). */
const registered = new Map<string, RoleDef>();
/** A project's roles once loaded (forgotten when the lookup changes: another project). */
const loaded = new Map<string, RoleDef>();

/**
 * Where roles that are not built in come from: the project's roles/ folder (src/project), asked
 * only for a name a playbook uses. `undefined` when the project has no such role. Throws (bad
 * input, naming the file) for a role that cannot be loaded or that shadows a built-in without
 * `overrides: true`.
 */
export type RoleLookup = (name: string, builtin: RoleDef | undefined) => RoleDef | undefined;
let lookup: RoleLookup | undefined;

export function setRoleLookup(fn: RoleLookup | undefined): void {
  lookup = fn;
  loaded.clear();
}

export function registerBuiltinRole(role: RoleDef): void {
  builtins.set(role.name, role);
}

export function registerRole(role: RoleDef): void {
  registered.set(role.name, role);
}

export function getRole(name: string): RoleDef | undefined {
  const known = registered.get(name) ?? loaded.get(name);
  if (known) return known;
  const builtin = builtins.get(name);
  const found = lookup?.(name, builtin);
  if (found) {
    loaded.set(name, found);
    return found;
  }
  return builtin;
}

export function isBuiltinRole(name: string): boolean {
  return builtins.has(name);
}

/** The built-in roles and those registered or loaded so far (a project's roles are loaded when a playbook names them). */
export function roleNames(): string[] {
  return [...new Set([...builtins.keys(), ...registered.keys(), ...loaded.keys()])].sort();
}
