import path from 'node:path';
import { z } from 'zod';
import { selectHosts, type Inventory } from '../inventory/index.js';
import { controlPathParams, getModule, moduleNames, type Task } from '../modules/index.js';
import { resolveModuleCall } from '../modules/ansible-names.js';
import { analyzeString, isTemplate, secretsRead, TemplateProblem } from '../modules/lib/render.js';
import { getRole } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { paramRules, playVars, secretRefusal } from './expand.js';
import { fieldName, readYamlFile, schemaError, whereAt, whereIs, whereKey, type LocatedYaml } from '../util/yaml.js';

const RESERVED = new Set(['name', 'notify', 'tags', 'when', 'ignore_errors', 'args']);

const taskSchema = z
  .object({
    name: z.string().min(1),
    notify: z.union([z.string(), z.array(z.string())]).optional(),
    tags: z.array(z.string()).optional(),
    /** A var name: the task runs when that var is truthy ("not NAME" for the opposite). */
    when: z.string().optional(),
    ignore_errors: z.boolean().optional(),
  })
  .catchall(z.unknown());

const playSchema = z.strictObject({
  name: z.string().min(1),
  hosts: z.string().min(1),
  vars: z.record(z.string(), z.unknown()).optional(),
  roles: z.array(z.string()).optional(),
  tasks: z.array(taskSchema).optional(),
  handlers: z.array(taskSchema).optional(),
  /** Rolling batches for this play (overridden by --serial). */
  serial: z.number().int().positive().optional(),
  /** Stop the whole play when this fraction of hosts failed (0 = any failure stops the play). */
  max_fail_percentage: z.number().min(0).max(100).optional(),
});

const playbookSchema = z.array(playSchema).min(1, 'a playbook is a list of plays');

/** A "{{ … }}" string in a YAML task's params, with where it was written. */
export interface TemplatedParam {
  /** Path inside the params: ["cmd"], ["environment", "DB_PASSWORD"]. */
  path: Array<string | number>;
  text: string;
  /** "file:line:col: [0].tasks[1].command.cmd" */
  at: string;
}

/** A task from YAML, before vars are applied: `when` is a var name evaluated per host. */
export interface YamlTask extends Task {
  whenVar?: string;
  templated: TemplatedParam[];
}

/** Every template string in params, by path. */
function templatedStrings(v: unknown, path: Array<string | number> = []): Array<{ path: Array<string | number>; text: string }> {
  if (typeof v === 'string') return isTemplate(v) ? [{ path, text: v }] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => templatedStrings(x, [...path, i]));
  if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => templatedStrings(x, [...path, k]));
  return [];
}

export interface Play {
  name: string;
  hosts: string;
  vars: Record<string, unknown>;
  /** "file:line:col" of a var set in the play's vars (for errors about role vars). */
  varSource?(name: string): string | undefined;
  roles: string[];
  tasks: YamlTask[];
  handlers: YamlTask[];
  serial?: number;
  maxFailPercentage?: number;
}

export interface Playbook {
  file: string;
  dir: string;
  plays: Play[];
}

/** `read`: the file already read (a role's tasks file, wrapped as one play by src/project/yaml-role.ts). */
export function loadPlaybook(file: string, read?: LocatedYaml): Playbook {
  const src = read ?? readYamlFile(file, 'playbook', PlaybookError);
  if (src.data === null || src.data === undefined) {
    throw new PlaybookError(`${whereAt(src, 0)}: (top level): the playbook is empty`, 'a playbook is a list of plays: - name: …, hosts: …, tasks: […]');
  }
  const parsed = playbookSchema.safeParse(src.data);
  if (!parsed.success) throw new PlaybookError(schemaError(src, parsed.error.issues));
  /** "file:line:col: field" of a path: of its value, or (atKey) of its key. */
  const at = (p: Array<string | number>) => `${whereIs(src, p)}: ${fieldName(p)}`;
  const atKey = (p: Array<string | number>) => `${whereKey(src, p)}: ${fieldName(p)}`;
  const plays = parsed.data.map((p, pi): Play => {
    (p.roles ?? []).forEach((r, ri) => {
      if (!getRole(r)) throw new PlaybookError(`${at([pi, 'roles', ri])}: unknown role "${r}"`);
    });
    const toTask = (t: z.infer<typeof taskSchema>, ti: number, section: 'tasks' | 'handlers'): YamlTask => {
      const moduleKeys = Object.keys(t).filter((k) => !RESERVED.has(k));
      if (moduleKeys.length !== 1) {
        throw new PlaybookError(
          `${at([pi, section, ti])}: a task names exactly one module (found ${moduleKeys.length ? moduleKeys.join(', ') : 'none'})`,
        );
      }
      // Ansible's names (ansible.builtin.apt, name: for packages: …) become ours here.
      const call = resolveModuleCall(t, moduleKeys[0]!, src, [pi, section, ti]);
      const module = call.module;
      const def = getModule(module);
      if (!def) throw new PlaybookError(`${atKey([pi, section, ti, module])}: unknown module "${module}"`, `modules: ${moduleNames().join(', ')}`);
      let params = call.params;
      // Paths on the control machine (template sources…) are relative to the playbook's folder.
      const local = controlPathParams(def).filter((k) => params && typeof params === 'object' && typeof (params as Record<string, unknown>)[k] === 'string');
      if (local.length) {
        params = { ...(params as object), ...Object.fromEntries(local.map((k) => [k, path.resolve(path.dirname(file), (params as Record<string, string>)[k]!)])) };
      }
      const check = def.schema.safeParse(params);
      if (!check.success) throw new PlaybookError(schemaError(src, check.error.issues.map((i) => ({ ...i, path: call.source(i.path) })), [pi, section, ti]));
      // Templates are parsed now, so a syntax error, or a value placed where a command line cannot
      // escape it, is bad input named by file:line:col rather than a failure on every host.
      const templated = templatedStrings(params).map(({ path: p, text }): TemplatedParam => {
        const where = at([pi, section, ti, ...call.source(p)]);
        try {
          analyzeString(text, { shell: paramRules(module, p[0]).shell });
        } catch (err) {
          if (err instanceof TemplateProblem) throw new PlaybookError(`${where}: ${err.described}`);
          throw err;
        }
        return { path: p, text, at: where };
      });
      return {
        name: t.name,
        module,
        params,
        notify: t.notify === undefined ? undefined : Array.isArray(t.notify) ? t.notify : [t.notify],
        tags: t.tags,
        whenVar: t.when,
        ignoreErrors: t.ignore_errors,
        templated,
      };
    };
    return {
      name: p.name,
      hosts: p.hosts,
      vars: p.vars ?? {},
      varSource: (name: string) => (p.vars && name in p.vars ? whereIs(src, [pi, 'vars', name]) : undefined),
      roles: p.roles ?? [],
      tasks: (p.tasks ?? []).map((t, i) => toTask(t, i, 'tasks')),
      handlers: (p.handlers ?? []).map((t, i) => toTask(t, i, 'handlers')),
      serial: p.serial,
      maxFailPercentage: p.max_fail_percentage,
    };
  });
  // A misspelt notify would silently never run its handler (and stay owed on the host forever).
  // Roles bring handlers of their own, built per host, so plays with roles are not checked.
  const known = new Set(plays.flatMap((p) => p.handlers.map((h) => h.name)));
  plays.forEach((play, pi) => {
    if (play.roles.length) return;
    for (const section of ['tasks', 'handlers'] as const) {
      play[section].forEach((t, ti) => {
        const unknown = (t.notify ?? []).find((n) => !known.has(n));
        if (unknown === undefined) return;
        throw new PlaybookError(
          `${at([pi, section, ti, 'notify'])}: no handler named "${unknown}"`,
          known.size ? `handlers: ${[...known].join(', ')}` : 'the playbook defines no handlers',
        );
      });
    }
  });
  return { file, dir: path.dirname(file), plays };
}

/**
 * Before any connection: a "{{ … }}" that reads a secret on any selected host may only stand in a
 * param its module takes secrets in — never in a command line (cmd, unless, onlyif, validate…),
 * where ps and sudo's log would show it, nor in a path or name that ends up in one.
 * The inventory's vars are all known now (facts, read later, are never secrets).
 */
export function checkSecretsInParams(inventory: Inventory, playbook: Playbook, hosts: string[]): void {
  for (const play of playbook.plays) {
    const targets = selectHosts(inventory, play.hosts).filter((h) => hosts.includes(h));
    for (const task of [...play.tasks, ...play.handlers]) {
      for (const t of task.templated) {
        const param = String(t.path[0]);
        const reads = analyzeString(t.text, { shell: paramRules(task.module, param).shell });
        for (const name of targets) {
          const secrets = secretsRead(reads, playVars(inventory.hosts.get(name)!, play));
          const refusal = secretRefusal(task.module, param, secrets, name);
          if (refusal) throw new PlaybookError(`${t.at}: ${refusal.message}`, refusal.hint);
        }
      }
    }
  }
}
