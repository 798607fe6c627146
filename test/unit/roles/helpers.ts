/** Role vars in unit tests: a role's vars parsed for a host, and its problems as "var: message" lines. */
import { parseRoleVars, type RoleDef, type RoleTarget } from '../../../src/roles/index.ts';
import { fieldName } from '../../../src/util/yaml.ts';

/** The role's vars as its tasks see them (defaults filled in); throws with the problems when they do not parse. */
export function roleVarsFor<V>(role: RoleDef, host: RoleTarget & { address?: string }, vars: Record<string, unknown> = {}): V & { inventory_hostname: string; ansible_host: string } {
  const { vars: parsed, issues } = parseRoleVars(role, vars, host);
  if (!parsed) throw new Error(`${role.name} vars for ${host.name}:\n${issues.map((i) => `${fieldName(i.path)}: ${i.message}`).join('\n')}`);
  return { ...(parsed as V), inventory_hostname: host.name, ansible_host: host.address ?? host.name };
}

/** What the role says is wrong with these vars on this host, as "var: message" lines (positions aside). */
export function problemsOf(role: RoleDef, host: RoleTarget, vars: Record<string, unknown>): string[] {
  return parseRoleVars(role, vars, host).issues.map((i) => `${i.path.length ? `${fieldName(i.path)}: ` : ''}${i.message}`);
}
