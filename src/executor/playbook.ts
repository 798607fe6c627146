import path from 'node:path';
import { z } from 'zod';
import { getModule, moduleNames, type Task } from '../modules/index.js';
import { getRole } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { fieldName, readYamlFile, schemaError, whereAt, whereIs, whereKey } from '../util/yaml.js';

const RESERVED = new Set(['name', 'notify', 'tags', 'when', 'ignore_errors']);

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

/** A task from YAML, before vars are applied: `when` is a var name evaluated per host. */
export interface YamlTask extends Task {
  whenVar?: string;
}

export interface Play {
  name: string;
  hosts: string;
  vars: Record<string, unknown>;
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

export function loadPlaybook(file: string): Playbook {
  const src = readYamlFile(file, 'playbook', PlaybookError);
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
      const module = moduleKeys[0]!;
      const def = getModule(module);
      if (!def) throw new PlaybookError(`${atKey([pi, section, ti, module])}: unknown module "${module}"`, `modules: ${moduleNames().join(', ')}`);
      let params = t[module];
      // Template sources in a playbook are relative to the playbook's folder.
      if (module === 'template' && params && typeof params === 'object' && 'src' in params) {
        params = { ...params, src: path.resolve(path.dirname(file), String((params as { src: unknown }).src)) };
      }
      const check = def.schema.safeParse(params);
      if (!check.success) throw new PlaybookError(schemaError(src, check.error.issues, [pi, section, ti, module]));
      return {
        name: t.name,
        module,
        params,
        notify: t.notify === undefined ? undefined : Array.isArray(t.notify) ? t.notify : [t.notify],
        tags: t.tags,
        whenVar: t.when,
        ignoreErrors: t.ignore_errors,
      };
    };
    return {
      name: p.name,
      hosts: p.hosts,
      vars: p.vars ?? {},
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
