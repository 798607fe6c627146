import path from 'node:path';
import { ROLES_DIR } from '../util/paths.js';
import type { Facts } from '../facts/index.js';
import type { Host, Inventory } from '../inventory/index.js';
import { getModule, moduleNames, secretParams, type Task } from '../modules/index.js';
import { analyzeString, evaluateExpression, isTemplate, renderString, secretsRead, TemplateProblem, truthy } from '../modules/lib/render.js';
import { getRole, roleVars as parsedRoleVars, type RoleContext } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { resolveLayer } from '../inventory/vars/layer.js';
import { Secret } from '../util/secrets.js';
import { withDependencies } from '../project/dependencies.js';
import { bindTask, type HostTask } from './bind.js';
import { roleTree, type Expr, type Play, type TaskNode, type YamlTask } from './playbook.js';

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

/** The play's vars worked out on a host before connecting (the checks read them once per task). */
const beforeConnecting = new WeakMap<Play, WeakMap<Host, Record<string, unknown>>>();

/**
 * The vars "{{ … }}" in a play's YAML tasks see on a host: the inventory's, then the play's (their
 * templates worked out for this host: src/inventory/vars/layer.ts), then the facts and the results
 * registered so far. Facts are never secrets, so checks before connecting leave them out; a play var
 * that reads them, or a result not registered yet, is left out until it is known.
 */
export function playVars(host: Host, play: Play, facts?: Facts, registered?: Record<string, unknown>): Record<string, unknown> {
  const early = !facts && !registered;
  const cached = early ? beforeConnecting.get(play)?.get(host) : undefined;
  if (cached) return cached;
  const known = { inventory_hostname: host.name, ...(facts ? { facts } : {}), ...(registered ?? {}) };
  const pending = (name: string) => (name === 'facts' && !facts) || (play.registers?.has(name) ?? false);
  const vars = { ...host.vars, ...resolveLayer({ host, layer: play.vars, at: (name) => play.varSource?.(name), known, pending }), ...known };
  if (early) (beforeConnecting.get(play) ?? beforeConnecting.set(play, new WeakMap()).get(play)!).set(host, vars);
  return vars;
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

/** A task's own vars (task, block and include vars) rendered over the vars it sees. */
function taskVars(t: YamlTask, vars: Record<string, unknown>): Record<string, unknown> {
  if (Object.keys(t.vars).length === 0) return vars;
  return { ...vars, ...(renderDeep(t.vars, vars) as Record<string, unknown>) };
}

/**
 * Render "{{ … }}" in every string of a value (loop items, task vars). A string that reads a secret
 * stays a Secret, so the params it later goes into keep it out of command lines as any secret.
 */
function renderDeep(v: unknown, vars: Record<string, unknown>): unknown {
  if (typeof v === 'string') {
    if (!isTemplate(v)) return v;
    const rendered = renderString(v, vars);
    const secrets = secretsRead(analyzeString(v), vars);
    return secrets.length ? new Secret(secrets.join(', '), rendered) : rendered;
  }
  if (Array.isArray(v)) return v.map((x) => renderDeep(x, vars));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, renderDeep(x, vars)]));
  return v;
}

/** An expression's value, or a PlaybookError naming it and the task. */
export function evaluate(t: YamlTask, e: Expr, vars: Record<string, unknown>): unknown {
  try {
    return evaluateExpression(e.text, vars);
  } catch (err) {
    const msg = err instanceof TemplateProblem ? err.message : (err as Error).message;
    throw new PlaybookError(`${e.at}: task "${t.name}": ${msg}`);
  }
}

/**
 * A loop's items from its expression. A var (`users`, `db.users`) is taken as it is, secrets in it
 * staying secrets; a computed list is plain values, so it may not read a secret (the items would
 * then reach params as plain text, a command line among them).
 */
function loopItems(t: YamlTask, e: Expr, vars: Record<string, unknown>): unknown {
  const path = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(e.text.trim()) ? e.text.trim().split('.') : undefined;
  if (path) {
    let cur: unknown = vars;
    for (const k of path) {
      if (!cur || typeof cur !== 'object' || !Object.prototype.hasOwnProperty.call(cur, k)) return evaluate(t, e, vars);
      cur = (cur as Record<string, unknown>)[k];
    }
    return cur;
  }
  const secrets = secretsRead({ paths: e.roots.map((r) => [r]), anything: false }, vars);
  if (secrets.length) {
    throw new PlaybookError(`${e.at}: task "${t.name}": loop: this expression reads the secret var${secrets.length > 1 ? 's' : ''} ${secrets.map((x) => `"${x}"`).join(', ')}: loop over the var itself (loop: "{{ ${secrets[0]} }}"), so its secrets stay secrets`);
  }
  return evaluate(t, e, vars);
}

/** What a loop item is called in the output: its label, the item when short, else a summary. */
function itemLabel(t: YamlTask, item: unknown, vars: Record<string, unknown>): string {
  if (t.loopLabel !== undefined) return isTemplate(t.loopLabel) ? renderString(t.loopLabel, vars) : t.loopLabel;
  if (t.noLog) return 'item hidden: no_log';
  const text = typeof item === 'string' ? item : JSON.stringify(item) ?? String(item);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** One run of a YAML task on a host: once, or once per loop item. */
export interface Iteration {
  task: Task;
  /** The vars its changed_when / failed_when see (the loop var among them). */
  vars: Record<string, unknown>;
  label?: string;
}

/**
 * A YAML task over the vars a host gives it: its loop's items, and for each its condition and
 * params. Throws PlaybookError (an expression that fails, a loop that is not a list).
 */
export function evaluateYamlTask(t: YamlTask, hostVars: Record<string, unknown>, host: string, templateVars?: Record<string, unknown>): Iteration[] {
  const vars = taskVars(t, hostVars);
  if (!t.loop) return [{ task: yamlTask(t, vars, t.name, host, templateVars), vars }];
  let items: unknown;
  if ('items' in t.loop) items = renderDeep(t.loop.items, vars);
  else items = loopItems(t, t.loop.expr, vars);
  if (!Array.isArray(items)) {
    const where = 'items' in t.loop ? t.loop.at : t.loop.expr.at;
    throw new PlaybookError(`${where}: task "${t.name}": loop: expected a list, got ${items === null || items === undefined ? String(items) : typeof items}`);
  }
  return items.map((item) => {
    const itemVars = { ...vars, [t.loopVar]: item };
    const label = itemLabel(t, item, itemVars);
    return { task: yamlTask(t, itemVars, `${t.name} (${label})`, host, templateVars), vars: itemVars, label };
  });
}

/**
 * A YAML task for one host (and one loop item): its conditions evaluated, its params rendered when
 * they hold. `templateVars`: a role's vars, which its templates read (its defaults too), as in Ansible.
 */
function yamlTask(t: YamlTask, vars: Record<string, unknown>, name: string, host: string, templateVars?: Record<string, unknown>): Task {
  const when = t.conditions.every((c) => truthy(evaluate(t, c, vars)));
  const task: Task = { name, module: t.module, params: t.params, notify: t.notify, tags: t.tags, ignoreErrors: t.ignoreErrors, role: t.role, when };
  if (!when) return task;
  try {
    const params = renderParams(t, vars, host);
    if (templateVars && t.module === 'template' && params && typeof params === 'object') {
      const p = params as Record<string, unknown>;
      return { ...task, params: { ...p, vars: { ...templateVars, ...((p.vars as Record<string, unknown> | undefined) ?? {}) } } };
    }
    return { ...task, params };
  } catch (err) {
    const msg = err instanceof TemplateProblem ? err.described : (err as Error).message;
    throw new PlaybookError(`${t.at}: task "${t.name}": ${msg.replace(/\s+/g, ' ')}`, err instanceof PlaybookError ? err.hint : undefined);
  }
}

/**
 * What runs on a host, in order: a task bound ahead (its state read in the play's one round
 * trip), a YAML task (bound ahead unless it reads a registered result: then when it runs), or a
 * block with its rescue and always.
 */
export type Step =
  | { kind: 'task'; index: number }
  | {
      kind: 'yaml';
      task: YamlTask;
      ahead?: Array<{ index: number; vars: Record<string, unknown> }>;
      /** The vars it is evaluated over when it runs (a role's task: the role's; absent: the play's). */
      vars?: Record<string, unknown>;
      /** A role's vars, which its templates read. */
      templateVars?: Record<string, unknown>;
    }
  | { kind: 'block'; block: Step[]; rescue: Step[]; always: Step[] };

/** A play's tasks for one host: the tasks bound ahead, and the steps that run them. */
export interface HostPlay {
  name: string;
  /** Every task bound before the play runs (its state is read in one round trip). */
  tasks: HostTask[];
  handlers: HostTask[];
  /** The YAML handler each of `handlers` comes from (its no_log, changed_when…) and its vars; undefined for a role's. */
  handlerSources?: Array<{ task: YamlTask; vars: Record<string, unknown> } | undefined>;
  /** What runs, in order (absent: `tasks`, in order). */
  steps?: Step[];
  /** The vars YAML tasks see on this host, before any result is registered. */
  vars?: Record<string, unknown>;
  /** The vars the play's own YAML tasks see once these results are registered (a play var may read one). */
  varsWith?(registered: Record<string, unknown>): Record<string, unknown>;
}

/** A play expanded for one host, or why it cannot be (reported when the play runs on that host). */
export type PlayExpansion = { ok: true; play: HostPlay } | { ok: false; error: unknown };

/** Where a walk of task nodes is: the vars its tasks see, and what the role (import) around them hands down. */
interface Scope {
  vars: Record<string, unknown>;
  /** The role the tasks belong to (its name tags them, as a TypeScript role's). */
  role?: string;
  /** Which role import (or `roles:` entry) of the play they come from, counted in play order: the same on every host. */
  site?: number;
  /** A role's vars, which its templates read. */
  templateVars?: Record<string, unknown>;
  /** The when of the role import around them held (false: every task is skipped). */
  gate: boolean;
  tags: string[];
}

/** Role tasks and the play's YAML tasks with "{{ … }}" rendered for this host, not yet bound. Throws on bad input. */
function renderPlay(play: Play, host: Host, facts: Facts, inventory: Inventory): { tasks: Task[]; handlers: Task[]; steps: Step[]; vars: Record<string, unknown>; handlerSources: HostPlay['handlerSources'] } {
  const tasks: Task[] = [];
  const handlers: Task[] = [];
  const steps: Step[] = [];
  const vars = playVars(host, play, facts);
  let sites = 0;
  /** Roles the play has run so far (`roles:` come with their dependencies already). */
  const ranRoles = new Set(play.roles);
  /** A role's steps: a TypeScript role's tasks as it makes them; a YAML role's tree, walked as the play's body. */
  const roleSteps = (name: string, site?: { when: boolean; tags: string[]; vars: Record<string, unknown>; seen: Record<string, unknown> }): Step[] => {
    const role = getRole(name)!;
    // An import's vars are the role's, over the play's (rendered over what the import site sees).
    const importVars = site && Object.keys(site.vars).length ? (renderDeep(site.vars, site.seen) as Record<string, unknown>) : undefined;
    const ctx = roleContext(name, host, facts, inventory, importVars ? { ...play, vars: { ...play.vars, ...importVars } } : play);
    handlers.push(...(role.handlers?.(ctx) ?? []).map((t) => ({ ...t, role: name })));
    const tree = roleTree(role);
    if (tree) return walk(tree.body, { vars: { ...vars, ...(importVars ?? {}), ...ctx.vars }, role: name, site: sites++, templateVars: ctx.vars, gate: site?.when ?? true, tags: site?.tags ?? [] });
    const out: Step[] = [];
    for (const t of role.tasks(ctx)) {
      out.push({ kind: 'task', index: tasks.length });
      tasks.push({ ...t, role: name, ...(site ? { when: t.when !== false && site.when, tags: [...(t.tags ?? []), ...site.tags] } : {}) });
    }
    return out;
  };
  const walk = (nodes: TaskNode[], scope: Scope): Step[] =>
    nodes.flatMap((n): Step[] => {
      if (n.kind === 'block') return [{ kind: 'block', block: walk(n.block, scope), rescue: walk(n.rescue, scope), always: walk(n.always, scope) }];
      if (n.kind === 'role') {
        const when = scope.gate && n.conditions.every((c) => truthy(evaluateExpression(c.text, scope.vars)));
        const site = { when, tags: [...scope.tags, ...n.tags], vars: n.vars, seen: scope.vars };
        // Its dependencies (meta/main.yml) first, with its when and tags, each once in the play as Ansible dedups them:
        // one that `roles:` or an earlier import ran is not run again. The imported role itself always runs.
        const deps = withDependencies([n.name]).filter((d) => d !== n.name && !ranRoles.has(d));
        for (const d of [...deps, n.name]) ranRoles.add(d);
        return [...deps.flatMap((d) => roleSteps(d, { ...site, vars: {} })), ...roleSteps(n.name, site)];
      }
      // A role's task is named by its role and carries the import's tags (the tree itself is shared by every host and import);
      // its run_once slot is its import's (the same role imported twice runs its run_once tasks twice, as in Ansible).
      const t: YamlTask = scope.role ? { ...n.task, role: scope.role, tags: [...new Set([...(n.task.tags ?? []), ...scope.tags])], onceKey: `${scope.site}:${n.task.id}` } : n.task;
      if (!scope.gate) {
        // The import's when does not hold: skipped as any task whose when does not (it registers "skipped").
        tasks.push({ name: t.name, module: t.module, params: t.params, tags: t.tags, role: t.role, when: false });
        return [{ kind: 'yaml', task: { ...t, registersRead: [] }, ahead: [{ index: tasks.length - 1, vars: scope.vars }] }];
      }
      // Read a registered result, or run on another host's connection (whose state this host's read must not hold): made when it runs.
      if (t.registersRead.length || t.delegateTo) return [{ kind: 'yaml', task: t, vars: scope.role ? scope.vars : undefined, templateVars: scope.templateVars }];
      const ahead = evaluateYamlTask(t, scope.vars, host.name, scope.templateVars).map((it) => {
        tasks.push(it.task);
        return { index: tasks.length - 1, vars: it.vars };
      });
      return [{ kind: 'yaml', task: t, ahead }];
    });
  for (const name of play.roles) steps.push(...roleSteps(name));
  steps.push(...walk(play.body, { vars, gate: true, tags: [] }));
  const handlerSources: HostPlay['handlerSources'] = handlers.map(() => undefined);
  for (const t of play.handlers) {
    const [only] = evaluateYamlTask(t, vars, host.name);
    handlers.push(only!.task);
    handlerSources.push({ task: t, vars: only!.vars });
  }
  return { tasks, handlers, steps, vars, handlerSources };
}

/**
 * Expand a play for one host, once: render its tasks, then bind each (params parsed, probes built).
 * A play that cannot be expanded (a role's tasks, a template, a `when:` var) is data, not a throw.
 */
export function expandPlay(play: Play, host: Host, facts: Facts, inventory: Inventory, _playbookFile?: string): PlayExpansion {
  try {
    const rendered = renderPlay(play, host, facts, inventory);
    const target = { host, facts };
    return {
      ok: true,
      play: {
        name: play.name,
        tasks: rendered.tasks.map((t) => bindTask(t, target)),
        handlers: rendered.handlers.map((t) => bindTask(t, target)),
        handlerSources: rendered.handlerSources,
        steps: rendered.steps,
        vars: rendered.vars,
        varsWith: (registered) => playVars(host, play, facts, registered),
      },
    };
  } catch (error) {
    return { ok: false, error };
  }
}
