import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Inventory } from '../inventory/index.js';
import { analyzeString, isTemplate, templateFileReads, type TemplateReads } from '../modules/lib/render.js';
import { ROLES_DIR } from '../util/paths.js';
import { editDistance } from '../util/yaml.js';
import { getRole, roleNames } from './registry.js';

/** What of a playbook's YAML tasks says which vars they read (the executor's YamlTask has it). */
interface TaskReads {
  module: string;
  params: unknown;
  /** The `when:` var ("NAME" or "not NAME"). */
  whenVar?: string;
  /** The "{{ … }}" strings of its params. */
  templated: ReadonlyArray<{ text: string }>;
  /** Top-level vars its when/loop/changed_when/failed_when expressions and its vars read. */
  varsRead?: readonly string[];
}
interface PlaybookReads {
  plays: ReadonlyArray<{ roles: string[]; tasks: readonly TaskReads[]; handlers: readonly TaskReads[] }>;
}

/** Vars the engine gives every task and template itself. */
const BUILTIN = ['inventory_hostname', 'ansible_host', 'facts'];

function roleTemplates(role: string): string[] {
  const dir = path.join(getRole(role)?.dir ?? path.join(ROLES_DIR, role), 'templates');
  return existsSync(dir) ? readdirSync(dir).map((f) => path.join(dir, f)) : [];
}

const playbookTasks = (playbook: PlaybookReads) => playbook.plays.flatMap((p) => [...p.tasks, ...p.handlers]);

/** The vars known to be read without parsing a template: the engine's, every role's schema, the tasks' when and expressions. */
function varsDeclared(playbook: PlaybookReads): Set<string> {
  const read = new Set<string>(BUILTIN);
  // A var meant for any role is not misspelt, even when this playbook does not run that role.
  for (const name of roleNames()) for (const k of Object.keys(getRole(name)!.vars.shape)) read.add(k);
  for (const task of playbookTasks(playbook)) {
    const when = task.whenVar && /^(?:not\s+)?([A-Za-z_][A-Za-z0-9_]*)$/.exec(task.whenVar.trim());
    if (when) read.add(when[1]!);
    for (const name of task.varsRead ?? []) read.add(name);
  }
  return read;
}

/** The top-level var names a playbook's roles, their templates and its own tasks read; undefined when a template may read anything. */
function varsRead(playbook: PlaybookReads): Set<string> | undefined {
  const read = varsDeclared(playbook);
  const add = (reads: TemplateReads): boolean => {
    for (const p of reads.paths) if (typeof p[0] === 'string') read.add(p[0]);
    return !reads.anything;
  };
  const roles = new Set(playbook.plays.flatMap((p) => p.roles));
  for (const role of roles) for (const file of roleTemplates(role)) if (!add(templateFileReads(file))) return undefined;
  for (const task of playbookTasks(playbook)) {
    for (const t of task.templated) if (!add(analyzeString(t.text))) return undefined;
    // A playbook's template file reads the host's vars as well as its params' vars.
    const src = task.module === 'template' ? (task.params as { src?: unknown } | undefined)?.src : undefined;
    if (typeof src === 'string' && !isTemplate(src) && existsSync(src) && !add(templateFileReads(src))) return undefined;
  }
  return read;
}

function closest(name: string, candidates: Iterable<string>): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d <= 2 && d < name.length / 2 && (!best || d < best.d)) best = { name: c, d };
  }
  return best?.name;
}

/**
 * Vars set in the inventory that nothing of this run reads (no role's schema, no template of the
 * playbook's roles, no task of the playbook): most likely misspelt (`haproxy_maxcon: 4000` leaves
 * haproxy_maxconn at its default, silently). One warning per var, with where it is set.
 */
export function unreadVarWarnings(inventory: Inventory, playbook: PlaybookReads): string[] {
  // Parsing every template of the playbook's roles is most of this check's cost (nunjucks, before
  // the first host is contacted): paid only when some var is not read by what is known without it.
  const declared = varsDeclared(playbook);
  if ([...inventory.hosts.values()].every((host) => Object.keys(host.vars).every((name) => declared.has(name)))) return [];
  const read = varsRead(playbook);
  if (!read) return [];
  const where = new Map<string, Set<string>>();
  for (const host of inventory.hosts.values()) {
    for (const name of Object.keys(host.vars)) {
      if (read.has(name)) continue;
      const places = where.get(name) ?? where.set(name, new Set()).get(name)!;
      places.add(inventory.varSource?.(host.name, name) ?? inventory.file);
    }
  }
  return [...where].map(([name, places]) => {
    const [first, ...others] = [...places];
    const meant = closest(name, read);
    return (
      `${first}: ${name}: no role, template or task reads this var` +
      (meant ? ` (did you mean "${meant}"?)` : '') +
      (others.length ? ` (also set at ${others.join(', ')})` : '')
    );
  });
}
