import type { RoleDef } from './types.js';
import { NamedRegistry, type NameLookup } from '../util/named-registry.js';

/** Roles by name: built in (src/roles/builtin.ts, a table generated at build time registers them), registered by code, or a project's (src/project). */
const roles = new NamedRegistry<RoleDef>();

/**
 * Where roles that are not built in come from: the project's roles/ folder (src/project), asked
 * only for a name a playbook uses. `undefined` when the project has no such role. Throws (bad
 * input, naming the file) for a role that cannot be loaded or that shadows a built-in without
 * `overrides: true`.
 */
export type RoleLookup = NameLookup<RoleDef>;

export function setRoleLookup(fn: RoleLookup | undefined): void {
  roles.setLookup(fn);
}

export function registerBuiltinRole(role: RoleDef): void {
  roles.addBuiltin(role);
}

export function registerRole(role: RoleDef): void {
  roles.register(role);
}

export function getRole(name: string): RoleDef | undefined {
  return roles.get(name);
}

export function isBuiltinRole(name: string): boolean {
  return roles.isBuiltin(name);
}

/** The built-in roles and those registered or loaded so far (a project's roles are loaded when a playbook names them). */
export function roleNames(): string[] {
  return roles.names();
}
