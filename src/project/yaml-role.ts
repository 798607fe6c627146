import { existsSync } from 'node:fs';
import path from 'node:path';
import { Document, Pair, Scalar, YAMLMap, YAMLSeq, type Node } from 'yaml';
import { z } from 'zod';
import { loadPlaybook, type TaskNode, type YamlTask } from '../executor/playbook.js';
import { evaluateYamlTask } from '../executor/expand.js';
import { controlPathParams, getModule, type Task } from '../modules/index.js';
import type { RoleContext, RoleDef } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { shown } from '../roles/vars.js';
import { Secret } from '../util/secrets.js';
import { readYamlFile, schemaError, whereIs, type LocatedYaml } from '../util/yaml.js';

/**
 * A role in Ansible's layout, read from YAML: tasks/main.yml, handlers/main.yml, defaults/main.yml,
 * templates/, files/, meta/main.yml (dependencies; argument_specs, the vars schema the loader
 * enforces: type, required, default, choices, description) or meta/argument_specs.yml. Its tasks
 * are read by the playbook's own task loader (src/executor/playbook.ts), so they accept exactly
 * what a playbook's tasks accept, and a bad one is exit 4 with file:line:col before any connection.
 */

const optionSchema = z.strictObject({
  type: z.enum(['str', 'int', 'float', 'bool', 'list', 'dict', 'path', 'raw']).default('raw'),
  required: z.boolean().default(false),
  default: z.unknown().optional(),
  choices: z.array(z.union([z.string(), z.number(), z.boolean()])).min(1).optional(),
  description: z.union([z.string(), z.array(z.string())]).optional(),
  elements: z.enum(['str', 'int', 'float', 'bool', 'list', 'dict', 'path', 'raw']).optional(),
});
type OptionSpec = z.output<typeof optionSchema>;

const argumentSpecsSchema = z.object({ main: z.object({ short_description: z.string().optional(), description: z.unknown().optional(), options: z.record(z.string(), optionSchema).default({}) }) });

const dependencySchema = z.union([z.string().min(1), z.object({ role: z.string().min(1) }).loose(), z.object({ name: z.string().min(1) }).loose()]);

const metaSchema = z
  .object({
    dependencies: z.array(dependencySchema).default([]),
    /** Replace the built-in role of the same name (else a role named like one is an error). */
    overrides: z.boolean().default(false),
    argument_specs: argumentSpecsSchema.optional(),
    galaxy_info: z.unknown().optional(),
    allow_duplicates: z.boolean().optional(),
  })
  .strict();

/** A type name of argument_specs as a zod type (a Secret passes where a string is asked: inventory secrets). */
function typeOf(type: OptionSpec['type'], elements?: OptionSpec['type']): z.ZodType {
  switch (type) {
    case 'str':
    case 'path':
      return z.union([z.string(), z.instanceof(Secret)], { error: (iss) => (iss.input === undefined ? 'required' : `expected a string, got ${shown(iss.input)}`) });
    case 'int':
      return z.number().int();
    case 'float':
      return z.number();
    case 'bool':
      return z.boolean();
    case 'list':
      return z.array(elements ? typeOf(elements) : z.unknown());
    case 'dict':
      return z.record(z.string(), z.unknown());
    case 'raw':
      return z.unknown();
  }
}

/** One var of the role: argument_specs' option (defaults/main.yml gives the default when the spec does not). */
export function optionToZod(spec: OptionSpec, fallbackDefault: unknown): z.ZodType {
  const base: z.ZodType = spec.choices ? z.literal(spec.choices) : typeOf(spec.type, spec.elements);
  const dflt = spec.default !== undefined ? spec.default : fallbackDefault;
  const s = spec.required ? base : dflt !== undefined ? base.default(dflt as never) : base.optional();
  // Described last: the documentation reads the description of the outer schema (as the built-in roles write it).
  const description = Array.isArray(spec.description) ? spec.description.join(' ') : spec.description;
  return description ? s.describe(description) : s;
}

function readOptional(file: string, what: string): LocatedYaml | undefined {
  return existsSync(file) ? readYamlFile(file, what, PlaybookError) : undefined;
}

function firstExisting(...files: string[]): string | undefined {
  return files.find((f) => existsSync(f));
}

const mainFile = (dir: string, sub: string) => firstExisting(path.join(dir, sub, 'main.yml'), path.join(dir, sub, 'main.yaml'));

/** Where a role's dependency was declared ("meta/main.yml:3:5"), for the cycle error. */
const dependencySources = new WeakMap<RoleDef, (index: number) => string>();

export function dependencySource(role: RoleDef, index: number): string | undefined {
  return dependencySources.get(role)?.(index);
}

/** A task list file (tasks/ or handlers/ main.yml) as the playbook loader reads a play's tasks. */
function loadTaskList(file: string, section: 'tasks' | 'handlers', dir: string, handlers: unknown[]): { tasks: YamlTask[]; data: unknown[] } {
  const src = readYamlFile(file, `role ${section} file`, PlaybookError);
  const data = src.data ?? [];
  if (!Array.isArray(data)) throw new PlaybookError(`${whereIs(src, [])}: (top level): a ${section} file is a list of tasks`);
  // Paths on the control machine are the role's: a template's src in templates/, a file to copy in files/ (as in Ansible).
  const tasks = data.map((t: unknown, ti) => {
    if (!t || typeof t !== 'object') return t;
    const out: Record<string, unknown> = { ...(t as Record<string, unknown>) };
    for (const [key, params] of Object.entries(out)) {
      if (!params || typeof params !== 'object' || Array.isArray(params)) continue;
      const def = getModule(key);
      if (!def) continue;
      const resolved: Record<string, unknown> = { ...(params as Record<string, unknown>) };
      for (const p of controlPathParams(def)) {
        const v = resolved[p];
        if (typeof v !== 'string' || path.isAbsolute(v) || v.includes('{{')) continue;
        const folder = key === 'template' ? 'templates' : 'files';
        const found = path.join(dir, folder, v);
        if (!existsSync(found)) {
          throw new PlaybookError(`${whereIs(src, [ti, key, p])}: [${ti}].${key}.${p}: "${v}" not found in ${path.join(dir, folder)}${path.sep}`);
        }
        resolved[p] = found;
      }
      out[key] = resolved;
    }
    return out;
  });
  // The file's list as the tasks (or handlers) of one play, its nodes kept: errors name this file's lines.
  const play = new YAMLMap();
  play.items.push(new Pair(new Scalar('name'), new Scalar(section)), new Pair(new Scalar(section), src.doc.contents as Node));
  const wrapped = new Document();
  wrapped.contents = new YAMLSeq();
  (wrapped.contents as YAMLSeq).items.push(play);
  const asPlay = { name: path.basename(dir), hosts: 'all', [section]: tasks, ...(section === 'tasks' ? { handlers } : {}) };
  try {
    const book = loadPlaybook(file, { file, lines: src.lines, doc: wrapped, data: [asPlay] });
    const play = book.plays[0]!;
    refuseRunTimeConstructs(play.body, section === 'tasks' ? play.tasks : play.handlers);
    return { tasks: play[section], data: tasks };
  } catch (err) {
    // "[0].tasks[2].apt" of the wrapping play → "[2].apt" of this file.
    if (err instanceof PlaybookError) throw new PlaybookError(err.message.replace(/\[0\]\.(tasks|handlers)(?=\[)/g, ''), err.hint);
    throw err;
  }
}

/**
 * A role's tasks are made for each host before the play runs (a role is a list of tasks), so what
 * the task language decides while a play runs — a registered result read later, changed_when /
 * failed_when, run_once, rescue/always, a role imported from a role — is refused in a role's files,
 * naming where, rather than flattened into something else. (A plain block with when/tags/vars, loop
 * and when over vars and facts work as in a playbook.)
 */
function refuseRunTimeConstructs(body: TaskNode[], tasks: YamlTask[]): void {
  const notYet = (at: string, what: string) =>
    new PlaybookError(`${at}: ${what} in a role's tasks is not supported yet (it is in a playbook's tasks)`, 'use it in a play, or split the role');
  const walk = (nodes: TaskNode[]): void => {
    for (const n of nodes) {
      if (n.kind === 'role') throw notYet(n.at.replace(/\[0\]\.(tasks|handlers)(?=\[)/g, ''), 'import_role');
      if (n.kind === 'block') {
        const handling = [...n.rescue, ...n.always][0];
        if (handling) throw notYet(handling.kind === 'task' ? handling.task.at : 'a block', 'rescue/always');
        walk(n.block);
      }
    }
  };
  walk(body);
  for (const t of tasks) {
    const what = t.register ? 'register' : t.changedWhen.length ? 'changed_when' : t.failedWhen.length ? 'failed_when' : t.runOnce ? 'run_once' : undefined;
    if (what) throw notYet(t.at, what);
  }
}

/** The vars "{{ … }}" in a YAML role's tasks see: the host's, then the role's own (defaults filled in), and facts. */
function renderVars(ctx: RoleContext): Record<string, unknown> {
  return { ...ctx.host.vars, ...ctx.vars, facts: ctx.facts };
}

function rendered(tasks: YamlTask[], ctx: RoleContext, file: string): Task[] {
  const vars = renderVars(ctx);
  return tasks.flatMap((t) => evaluateYamlTask(t, vars, ctx.host.name).map((it) => it.task)).map((task) => {
    // A template in a role reads the role's vars (its defaults too), as in Ansible.
    if (task.module === 'template' && task.params && typeof task.params === 'object') {
      const p = task.params as Record<string, unknown>;
      task.params = { ...p, vars: { ...ctx.vars, ...((p.vars as Record<string, unknown> | undefined) ?? {}) } };
    }
    return task;
  });
}

/** Loads roles/<name>/ (Ansible layout). Throws PlaybookError (exit 4) naming the file for any bad input. */
export function loadYamlRole(dir: string, name: string): RoleDef {
  const metaFile = mainFile(dir, 'meta');
  const meta = metaFile ? readYamlFile(metaFile, 'role meta file', PlaybookError) : undefined;
  const metaParsed = metaSchema.safeParse(meta?.data ?? {});
  if (!metaParsed.success) throw new PlaybookError(schemaError(meta!, metaParsed.error.issues));
  const specFile = path.join(dir, 'meta', 'argument_specs.yml');
  const specSrc = readOptional(specFile, 'role argument specs');
  let specs = metaParsed.data.argument_specs;
  if (specSrc) {
    const parsed = z.object({ argument_specs: argumentSpecsSchema }).safeParse(specSrc.data);
    if (!parsed.success) throw new PlaybookError(schemaError(specSrc, parsed.error.issues));
    specs = parsed.data.argument_specs;
  }
  const defaultsFile = mainFile(dir, 'defaults');
  const defaultsSrc = defaultsFile ? readYamlFile(defaultsFile, 'role defaults file', PlaybookError) : undefined;
  const defaults = (defaultsSrc?.data ?? {}) as Record<string, unknown>;
  if (typeof defaults !== 'object' || Array.isArray(defaults)) throw new PlaybookError(`${whereIs(defaultsSrc!, [])}: (top level): defaults are a map of var: value`);

  // The vars schema: every option of argument_specs, and every var of defaults/main.yml (any type, its default).
  const shape: Record<string, z.ZodType> = {};
  for (const [k, v] of Object.entries(defaults)) shape[k] = z.unknown().default(v as never).describe('set in defaults/main.yml');
  for (const [k, spec] of Object.entries(specs?.main.options ?? {})) shape[k] = optionToZod(spec, defaults[k]);

  const handlersFile = mainFile(dir, 'handlers');
  const handlers = handlersFile ? loadTaskList(handlersFile, 'handlers', dir, []) : { tasks: [], data: [] };
  const tasksFile = mainFile(dir, 'tasks');
  const tasks = tasksFile ? loadTaskList(tasksFile, 'tasks', dir, handlers.data) : { tasks: [] };

  const dependencies = metaParsed.data.dependencies.map((d) => (typeof d === 'string' ? d : 'role' in d ? String(d.role) : String(d.name)));
  const description = specs?.main.short_description ?? `A role from ${dir} (Ansible layout).`;
  const role: RoleDef = {
    name,
    description,
    vars: z.object(shape),
    tasks: (ctx) => rendered(tasks.tasks, ctx, tasksFile!),
    handlers: (ctx) => rendered(handlers.tasks, ctx, handlersFile!),
    overrides: metaParsed.data.overrides,
    dir,
    dependencies,
  };
  if (meta) dependencySources.set(role, (i) => whereIs(meta, ['dependencies', i]));
  return role;
}
