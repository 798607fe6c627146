import type { RoleDef } from './types.js';

const roles = new Map<string, RoleDef>();

export function registerRole(role: RoleDef): void {
  roles.set(role.name, role);
}

export function getRole(name: string): RoleDef | undefined {
  return roles.get(name);
}

export function roleNames(): string[] {
  return [...roles.keys()].sort();
}
