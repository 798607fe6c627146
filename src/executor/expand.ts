import path from 'node:path';
import { ROLES_DIR } from '../util/paths.js';
import type { Facts } from '../facts/index.js';
import type { Host, Inventory } from '../inventory/index.js';
import { getModule, moduleNames, secretParams, type Task } from '../modules/index.js';
import { analyzeString, isTemplate, renderString, secretsRead, TemplateProblem } from '../modules/lib/render.js';
import { getRole, roleVars as parsedRoleVars, type RoleContext } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import { bindTask, type HostTask } from './bind.js';
import type { Play, YamlTask } from './playbook.js';

export { ROLES_DIR };

/** Vars as a role sees them: inventory vars, then the play's vars, parsed by the role's schema (src/roles/validate.ts). */
export function roleVars(roleName: string, host: Host, play: Play) {
  return parsedRoleVars(roleName, host, play);
}

function roleContext(roleName: string, host: Host, facts: Facts, inventory: Inventory, play: Play): RoleContext {
  return {
    host,
    facts,
    vars: roleVars(roleName, host, play),
    inventory,
    hostsIn: (group) => (inventory.groups.get(group) ?? []).map((h) => inventory.hosts.get(h)!),
    file: (relative) => path.join(getRole(roleName)?.dir ?? path.join(ROLES_DIR, roleName), relative),
  };
}

/** The vars "{{ … }}" in a play's YAML tasks see on a host (facts are never secrets, so checks before connecting leave them out). */
export function playVars(host: Host, play: Play, facts?: Facts): Record<string, unknown> {
  return { ...host.vars, ...play.vars, inventory_hostname: host.name, ...(facts ? { facts } : {}) };
}

/** How a module takes what a template puts into one of its (top-level) params. */
export interface ParamRules {
  /** A POSIX sh command line: values are escaped for where they stand; never a secret. */
  shell: boolean;
  /** May carry a secret (the module keeps it out of argv, logs and diffs). */
  secret: boolean;
}

export function paramRules(module: string, param: string | number | undefined): ParamRules {
  const def = getModule(module);
  const name = String(param);
  return { shell: def?.shellParams?.includes(name) ?? false, secret: def ? secretParams(def).includes(name) : false };
}

/**
 * Why a param may not read these secret vars, or undefined when it may. One message for the check
 * before connecting (playbook.ts) and for expansion, which refuses the same thing again.
 */
export function secretRefusal(module: string, param: string, secretVars: string[], host: string): { message: string; hint: string } | undefined {
  if (secretVars.length === 0) return undefined;
  const rules = paramRules(module, param);
  if (rules.secret) return undefined;
  const read = `reads the secret var${secretVars.length > 1 ? 's' : ''} ${secretVars.map((v) => `"${v}"`).join(', ')} (host ${host})`;
  const secretsOf = (m: string) => {
    const def = getModule(m);
    return def ? secretParams(def) : [];
  };
  const takers = secretsOf(module);
  const others = moduleNames()
    .map((m) => [m, secretsOf(m)] as const)
    .filter(([, params]) => params.length)
    .map(([m, params]) => `${m} (${params.join(', ')})`);
  const hint = takers.length ? `${module} takes secrets in: ${takers.join(', ')}` : `${module} takes no secrets; modules that do: ${others.join(', ')}`;
  if (rules.shell) {
    return {
      message: `${read}: a secret never goes into a command line, where ps and sudo's log show it`,
      hint: `hand it to the command on stdin (stdin: "{{ ${secretVars[0]} }}") or in its environment (environment: { NAME: "{{ ${secretVars[0]} }}" })`,
    };
  }
  return { message: `${read}: ${module}'s ${param} does not take secrets (it may reach a command line or the output)`, hint };
}

/**
 * Render "{{ … }}" in every string of a YAML task's params. A command-line param gets every value
 * escaped for its place; a string that reads a secret becomes a Secret itself (so the module keeps
 * it out of argv and diffs), and only where the module takes secrets.
 */
function renderParams(task: YamlTask, vars: Record<string, unknown>, host: string): unknown {
  const render = (v: unknown, param: string): unknown => {
    if (typeof v === 'string') {
      if (!isTemplate(v)) return v;
      const { shell } = paramRules(task.module, param);
      const rendered = renderString(v, vars, { shell });
      const secrets = secretsRead(analyzeString(v, { shell }), vars);
      const refusal = secretRefusal(task.module, param, secrets, host);
      if (refusal) throw new PlaybookError(`${param}: ${refusal.message}`, refusal.hint);
      return secrets.length ? new Secret(secrets.join(', '), rendered) : rendered;
    }
    if (Array.isArray(v)) return v.map((x) => render(x, param));
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, render(x, param)]));
    }
    return v;
  };
  const params = task.params;
  if (!params || typeof params !== 'object' || Array.isArray(params)) return params;
  return Object.fromEntries(Object.entries(params).map(([k, x]) => [k, render(x, k)]));
}

/** A YAML task rendered for a host (also a project's YAML role's tasks, src/project/yaml-role.ts). */
export function yamlTask(t: YamlTask, vars: Record<string, unknown>, where: string, host: string): Task {
  let when: boolean | undefined;
  if (t.whenVar) {
    const m = /^(not\s+)?([A-Za-z_][A-Za-z0-9_]*)$/.exec(t.whenVar.trim());
    if (!m) throw new PlaybookError(`${where}: task "${t.name}": when: takes a var name or "not NAME"`);
    if (!(m[2]! in vars)) throw new PlaybookError(`${where}: task "${t.name}": when: var "${m[2]}" is not defined`);
    when = Boolean(vars[m[2]!]) !== Boolean(m[1]);
  }
  try {
    return { ...t, params: renderParams(t, vars, host), when };
  } catch (err) {
    const msg = err instanceof TemplateProblem ? err.described : (err as Error).message;
    throw new PlaybookError(`${where}: task "${t.name}": ${msg.replace(/\s+/g, ' ')}`, err instanceof PlaybookError ? err.hint : undefined);
  }
}

/** A play's tasks for one host: role tasks (from TypeScript), then the play's own, each bound. */
export interface HostPlay {
  name: string;
  tasks: HostTask[];
  handlers: HostTask[];
}

/** A play expanded for one host, or why it cannot be (reported when the play runs on that host). */
export type PlayExpansion = { ok: true; play: HostPlay } | { ok: false; error: unknown };

/** Role tasks and the play's YAML tasks with "{{ … }}" rendered for this host, not yet bound. Throws on bad input. */
function renderPlay(play: Play, host: Host, facts: Facts, inventory: Inventory, playbookFile: string): { tasks: Task[]; handlers: Task[] } {
  const tasks: Task[] = [];
  const handlers: Task[] = [];
  for (const name of play.roles) {
    const role = getRole(name)!;
    const ctx = roleContext(name, host, facts, inventory, play);
    tasks.push(...role.tasks(ctx).map((t) => ({ ...t, role: name })));
    handlers.push(...(role.handlers?.(ctx) ?? []).map((t) => ({ ...t, role: name })));
  }
  const vars = playVars(host, play, facts);
  tasks.push(...play.tasks.map((t) => yamlTask(t, vars, playbookFile, host.name)));
  handlers.push(...play.handlers.map((t) => yamlTask(t, vars, playbookFile, host.name)));
  return { tasks, handlers };
}

/**
 * Expand a play for one host, once: render its tasks, then bind each (params parsed, probes built).
 * A play that cannot be expanded (a role's tasks, a template, a `when:` var) is data, not a throw.
 */
export function expandPlay(play: Play, host: Host, facts: Facts, inventory: Inventory, playbookFile: string): PlayExpansion {
  try {
    const rendered = renderPlay(play, host, facts, inventory, playbookFile);
    const target = { host, facts };
    return {
      ok: true,
      play: { name: play.name, tasks: rendered.tasks.map((t) => bindTask(t, target)), handlers: rendered.handlers.map((t) => bindTask(t, target)) },
    };
  } catch (error) {
    return { ok: false, error };
  }
}
