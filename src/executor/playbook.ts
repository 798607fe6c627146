import path from 'node:path';
import { z } from 'zod';
import { getModule, type Task } from '../modules/index.js';
import { getRole } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { readYamlFile, schemaErrorMessage, whereIs } from '../util/yaml.js';

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
  const parsed = playbookSchema.safeParse(src.data);
  if (!parsed.success) throw new PlaybookError(schemaErrorMessage(src, parsed.error.issues[0]!));
  const plays = parsed.data.map((p, pi): Play => {
    (p.roles ?? []).forEach((r, ri) => {
      if (!getRole(r)) throw new PlaybookError(`${whereIs(src, [pi, 'roles', ri])}: roles.${ri}: unknown role "${r}"`);
    });
    const toTask = (t: z.infer<typeof taskSchema>, ti: number, section: 'tasks' | 'handlers'): YamlTask => {
      const moduleKeys = Object.keys(t).filter((k) => !RESERVED.has(k));
      if (moduleKeys.length !== 1) {
        throw new PlaybookError(
          `${whereIs(src, [pi, section, ti])}: ${section}.${ti}: a task names exactly one module (found ${moduleKeys.length ? moduleKeys.join(', ') : 'none'})`,
        );
      }
      const module = moduleKeys[0]!;
      const def = getModule(module);
      if (!def) throw new PlaybookError(`${whereIs(src, [pi, section, ti, module])}: ${section}.${ti}: unknown module "${module}"`);
      let params = t[module];
      // Template sources in a playbook are relative to the playbook's folder.
      if (module === 'template' && params && typeof params === 'object' && 'src' in params) {
        params = { ...params, src: path.resolve(path.dirname(file), String((params as { src: unknown }).src)) };
      }
      const check = def.schema.safeParse(params);
      if (!check.success) throw new PlaybookError(schemaErrorMessage(src, check.error.issues[0]!, [pi, section, ti, module]));
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
  return { file, dir: path.dirname(file), plays };
}
