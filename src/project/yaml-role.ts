import { existsSync } from 'node:fs';
import path from 'node:path';
import { Document, Pair, Scalar, YAMLMap, YAMLSeq, type Node } from 'yaml';
import { z } from 'zod';
import { loadPlaybook, setRoleTree, whileLoadingRole, type RoleTree, type YamlTask } from '../executor/playbook.js';
import { evaluateYamlTask } from '../executor/expand.js';
import type { Task } from '../modules/index.js';
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
 * what a playbook's tasks accept (register, changed_when/failed_when, run_once, block/rescue/always,
 * include_tasks, import_role), and a bad one is exit 4 with file:line:col before any connection.
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
function loadTaskList(file: string, section: 'tasks' | 'handlers', dir: string, handlers: unknown[]): { tasks: YamlTask[]; data: unknown[]; tree: RoleTree } {
  const src = readYamlFile(file, `role ${section} file`, PlaybookError);
  const data = src.data ?? [];
  if (!Array.isArray(data)) throw new PlaybookError(`${whereIs(src, [])}: (top level): a ${section} file is a list of tasks`);
  // The file's list as the tasks (or handlers) of one play, its nodes kept: errors name this file's lines.
  const play = new YAMLMap();
  play.items.push(new Pair(new Scalar('name'), new Scalar(section)), new Pair(new Scalar(section), src.doc.contents as Node));
  const wrapped = new Document();
  wrapped.contents = new YAMLSeq();
  (wrapped.contents as YAMLSeq).items.push(play);
  const asPlay = { name: path.basename(dir), hosts: 'all', [section]: data, ...(section === 'tasks' ? { handlers } : {}) };
  try {
    // Paths on the control machine are the role's: a template's src in templates/, a file to copy in files/ (as in Ansible).
    const book = loadPlaybook(file, { file, lines: src.lines, doc: wrapped, data: [asPlay] }, { roleDir: dir });
    const play = book.plays[0]!;
    return { tasks: play[section], data, tree: { body: play.body, tasks: play.tasks, registers: book.registers, importedRoles: play.importedRoles } };
  } catch (err) {
    // "[0].tasks[2].apt" of the wrapping play → "[2].apt" of this file.
    if (err instanceof PlaybookError) throw new PlaybookError(err.message.replace(/\[0\]\.(tasks|handlers)(?=\[)/g, ''), err.hint);
    throw err;
  }
}

/** The vars "{{ … }}" in a YAML role's tasks see: the host's, then the role's own (defaults filled in), and facts. */
function renderVars(ctx: RoleContext): Record<string, unknown> {
  return { ...ctx.host.vars, ...ctx.vars, facts: ctx.facts };
}

/**
 * The tasks as a flat list for one host (a handler list; a role's tasks for a caller that does not walk
 * its tree). A template in a role reads the role's vars (its defaults too), as in Ansible.
 */
function rendered(tasks: YamlTask[], ctx: RoleContext): Task[] {
  return tasks.flatMap((t) => evaluateYamlTask(t, renderVars(ctx), ctx.host.name, ctx.vars).map((it) => it.task));
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
  const tasksFile = mainFile(dir, 'tasks');
  const { handlers, tasks } = whileLoadingRole(name, () => {
    const handlers = handlersFile ? loadTaskList(handlersFile, 'handlers', dir, []) : undefined;
    const tasks = tasksFile ? loadTaskList(tasksFile, 'tasks', dir, handlers?.data ?? []) : undefined;
    return { handlers, tasks };
  });

  const dependencies = metaParsed.data.dependencies.map((d) => (typeof d === 'string' ? d : 'role' in d ? String(d.role) : String(d.name)));
  const description = specs?.main.short_description ?? `A role from ${dir} (Ansible layout).`;
  const role: RoleDef = {
    name,
    description,
    vars: z.object(shape),
    tasks: (ctx) => rendered(tasks?.tasks ?? [], ctx),
    handlers: (ctx) => rendered(handlers?.tasks ?? [], ctx),
    overrides: metaParsed.data.overrides,
    dir,
    dependencies,
  };
  if (meta) dependencySources.set(role, (i) => whereIs(meta, ['dependencies', i]));
  // What runs: the tasks as a tree, walked on each host like a play's body (src/executor/expand.ts).
  setRoleTree(role, tasks?.tree ?? { body: [], tasks: [], registers: new Set(), importedRoles: [] });
  return role;
}
