import path from 'node:path';
import { ROLES_DIR } from '../util/paths.js';
import type { Facts } from '../facts/index.js';
import type { Host, Inventory } from '../inventory/index.js';
import { renderString, type Task } from '../modules/index.js';
import { getRole, type RoleContext } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import type { HostPlay } from './host-run.js';
import type { Play, YamlTask } from './playbook.js';

export { ROLES_DIR };

/** Vars as a role sees them: its defaults, then inventory vars, then the play's vars. */
export function roleVars(roleName: string, host: Host, play: Play): Record<string, unknown> {
  const role = getRole(roleName);
  return { ...(role?.defaults ?? {}), ...host.vars, ...play.vars, inventory_hostname: host.name, ansible_host: host.address };
}

function roleContext(roleName: string, host: Host, facts: Facts, inventory: Inventory, play: Play): RoleContext {
  return {
    host,
    facts,
    vars: roleVars(roleName, host, play),
    inventory,
    hostsIn: (group) => (inventory.groups.get(group) ?? []).map((h) => inventory.hosts.get(h)!),
    file: (relative) => path.join(ROLES_DIR, roleName, relative),
  };
}

/** Render "{{ var }}" in every string of a YAML task's params. */
function renderParams(v: unknown, vars: Record<string, unknown>): unknown {
  if (typeof v === 'string') return v.includes('{{') || v.includes('{%') ? renderString(v, vars) : v;
  if (Array.isArray(v)) return v.map((x) => renderParams(x, vars));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, renderParams(x, vars)]));
  }
  return v;
}

function yamlTask(t: YamlTask, vars: Record<string, unknown>, where: string): Task {
  let when: boolean | undefined;
  if (t.whenVar) {
    const m = /^(not\s+)?([A-Za-z_][A-Za-z0-9_]*)$/.exec(t.whenVar.trim());
    if (!m) throw new PlaybookError(`${where}: task "${t.name}": when: takes a var name or "not NAME"`);
    if (!(m[2]! in vars)) throw new PlaybookError(`${where}: task "${t.name}": when: var "${m[2]}" is not defined`);
    when = Boolean(vars[m[2]!]) !== Boolean(m[1]);
  }
  try {
    return { ...t, params: renderParams(t.params, vars), when };
  } catch (err) {
    throw new PlaybookError(`${where}: task "${t.name}": ${(err as Error).message.replace(/\s+/g, ' ')}`);
  }
}

/** Expand a play for one host: role tasks (from TypeScript) then the play's own tasks. */
export function expandPlay(play: Play, host: Host, facts: Facts, inventory: Inventory, playbookFile: string): HostPlay {
  const tasks: Task[] = [];
  const handlers: Task[] = [];
  for (const name of play.roles) {
    const role = getRole(name)!;
    const ctx = roleContext(name, host, facts, inventory, play);
    tasks.push(...role.tasks(ctx).map((t) => ({ ...t, role: name })));
    handlers.push(...(role.handlers?.(ctx) ?? []).map((t) => ({ ...t, role: name })));
  }
  const vars = { ...host.vars, ...play.vars, inventory_hostname: host.name, facts };
  tasks.push(...play.tasks.map((t) => yamlTask(t, vars, playbookFile)));
  handlers.push(...play.handlers.map((t) => yamlTask(t, vars, playbookFile)));
  return { name: play.name, tasks, handlers };
}
