/** Role vars in unit tests: a role's vars parsed for a host, and its problems as "var: message" lines. */
import path from 'node:path';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import type { Task } from '../../../src/modules/index.ts';
import { parseRoleVars, type RoleDef, type RoleTarget } from '../../../src/roles/index.ts';
import type { RoleContext } from '../../../src/roles/types.ts';
import { Secret } from '../../../src/util/secrets.ts';
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

/** A site of hosts for role unit tests: name → private address and groups (besides `all`). */
export type SiteHosts = Record<string, { address: string; groups: string[] }>;

/** The reference site's two topologies: databases on the web servers (3 hosts), and on hosts of their own (split). */
export const THREE_HOST_SITE: SiteHosts = {
  'lb-01': { address: '10.9.0.10', groups: ['loadbalancers'] },
  'web-01': { address: '10.9.0.11', groups: ['webservers', 'db_primary', 'databases'] },
  'web-02': { address: '10.9.0.12', groups: ['webservers', 'db_replica', 'databases'] },
};
export const SPLIT_SITE: SiteHosts = {
  'lb-01': { address: '10.9.0.10', groups: ['loadbalancers'] },
  'web-01': { address: '10.9.0.11', groups: ['webservers'] },
  'web-02': { address: '10.9.0.12', groups: ['webservers'] },
  'db-01': { address: '10.9.0.21', groups: ['db_primary', 'databases'] },
  'db-02': { address: '10.9.0.22', groups: ['db_replica', 'databases'] },
};

/** The secrets the database roles require, as the inventory would give them. */
export const SITE_SECRETS = {
  mysql_app_password: new Secret('mysql_app_password', 'App-Passw0rd-20241'),
  mysql_exporter_password: new Secret('mysql_exporter_password', 'Exp-Passw0rd-20241'),
  mysql_replication_password: new Secret('mysql_replication_password', 'Repl-Passw0rd-2024'),
};

export function siteHost(site: SiteHosts, name: string): Host {
  return { name, address: site[name]!.address, groups: ['all', ...site[name]!.groups], vars: {}, connection: {} } as unknown as Host;
}

/** A role's tasks (or handlers) for one host of a site, as the executor would build them. */
export function roleTasksFor(r: RoleDef, site: SiteHosts, name: string, vars: Record<string, unknown> = {}, which: 'tasks' | 'handlers' = 'tasks'): Task[] {
  const h = siteHost(site, name);
  const ctx = {
    host: h,
    facts: { os: { family: 'debian' }, hostname: name } as unknown as Facts,
    vars: roleVarsFor(r, h, { ...SITE_SECRETS, ...vars }),
    inventory: { name: 'unit', file: '/srv/site/unit.yml' } as unknown as Inventory,
    hostsIn: (g: string) => Object.keys(site).filter((n) => site[n]!.groups.includes(g)).map((n) => siteHost(site, n)),
    file: (rel: string) => path.resolve(import.meta.dirname, '../../../src/roles', r.name, rel),
  } as unknown as RoleContext<never>;
  return which === 'tasks' ? r.tasks(ctx) : (r.handlers?.(ctx) ?? []);
}
