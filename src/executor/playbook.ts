import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Inventory } from '../inventory/index.js';
import { playTargets } from './targets.js';
import { controlPathParams, getModule, moduleNames, type Task } from '../modules/index.js';
import { resolveModuleCall } from '../modules/ansible-names.js';
import { analyzeExpression, analyzeString, isTemplate, secretsRead, TemplateProblem } from '../modules/lib/render.js';
import { getRole } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { paramRules, playVars, secretRefusal } from './expand.js';
import { fieldName, readYamlFile, schemaError, whereAt, whereIs, whereKey, type LocatedYaml } from '../util/yaml.js';

/** Keys of a task that are not its module. */
const TASK_KEYS = [
  'name', 'notify', 'tags', 'when', 'ignore_errors', 'loop', 'loop_control', 'register', 'changed_when', 'failed_when',
  'run_once', 'delegate_to', 'vars', 'args', 'environment', 'no_log', 'become', 'become_user',
] as const;
/** Keys that make a task something else than a module call. */
const STRUCTURE_KEYS = ['block', 'rescue', 'always', 'include_tasks', 'import_tasks', 'import_role', 'include_role'] as const;
const RESERVED = new Set<string>([...TASK_KEYS, ...STRUCTURE_KEYS]);

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A user name sudo -u is given: never an option, never a "#uid" (a name, as written in the inventory). */
export const USER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/;
const condition = z.union([z.string().min(1), z.boolean(), z.array(z.union([z.string().min(1), z.boolean()]))]);

const taskSchema = z
  .object({
    name: z.string().min(1),
    notify: z.union([z.string(), z.array(z.string())]).optional(),
    tags: z.array(z.string()).optional(),
    /** A Nunjucks expression (or a list of them: all must hold) over vars, facts and registered results. */
    when: condition.optional(),
    ignore_errors: z.boolean().optional(),
    loop: z.union([z.array(z.unknown()), z.string().min(1)]).optional(),
    loop_control: z.strictObject({ label: z.string().min(1).optional(), loop_var: z.string().regex(NAME, 'a var name').optional() }).optional(),
    register: z.string().regex(NAME, 'a var name (letters, digits, _)').optional(),
    changed_when: condition.optional(),
    failed_when: condition.optional(),
    run_once: z.boolean().optional(),
    delegate_to: z.string().optional(),
    vars: z.record(z.string().regex(NAME, 'a var name'), z.unknown()).optional(),
    /** The command's environment (values may be secrets: handed over on its stdin, never in argv). */
    environment: z.record(z.string().regex(NAME, 'an environment variable name (letters, digits, _)'), z.unknown()).optional(),
    /** Hide the task's output, diff and messages in every view (plain, -vv, --log, --json). */
    no_log: z.boolean().optional(),
    become: z.boolean().optional(),
    become_user: z.string().min(1).optional(),
  })
  .catchall(z.unknown());

/** A block, an include or a role import: everything a task can be but a module call. */
const structureSchema = z.strictObject({
  name: z.string().min(1).optional(),
  tags: z.array(z.string()).optional(),
  when: condition.optional(),
  ignore_errors: z.boolean().optional(),
  run_once: z.boolean().optional(),
  delegate_to: z.string().optional(),
  vars: z.record(z.string().regex(NAME, 'a var name'), z.unknown()).optional(),
  become: z.boolean().optional(),
  become_user: z.string().min(1).optional(),
  /** Handed to the block's command tasks (joined with their own). */
  environment: z.record(z.string().regex(NAME, 'an environment variable name (letters, digits, _)'), z.unknown()).optional(),
  block: z.array(z.unknown()).min(1, 'a block holds at least one task').optional(),
  rescue: z.array(z.unknown()).optional(),
  always: z.array(z.unknown()).optional(),
  include_tasks: z.string().min(1).optional(),
  import_tasks: z.string().min(1).optional(),
  import_role: z.strictObject({ name: z.string().min(1) }).optional(),
  include_role: z.strictObject({ name: z.string().min(1) }).optional(),
});

const playSchema = z.strictObject({
  name: z.string().min(1),
  hosts: z.string().min(1),
  vars: z.record(z.string(), z.unknown()).optional(),
  roles: z.array(z.string()).optional(),
  tasks: z.array(z.unknown()).optional(),
  handlers: z.array(z.unknown()).optional(),
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

/** An expression of the task language (when, loop, changed_when, failed_when), parsed at load time. */
export interface Expr {
  text: string;
  /** "file:line:col: [0].tasks[1].when" */
  at: string;
  /** Top-level var names it reads. */
  roots: readonly string[];
}

/** A task's `loop`: a list written in the playbook (its strings may be templates), or an expression giving one. */
export type Loop = { items: unknown[]; at: string } | { expr: Expr };

/**
 * A task's own become settings (Ansible's keywords): `become` switches sudo on or off for its
 * command, `user` (a name, or a template of one) is who sudo runs it as. Either may be absent: the
 * inventory's then applies.
 */
export interface Become {
  become?: boolean;
  user?: string;
  /** "file:line:col: [0].tasks[1].become_user" */
  at: string;
}

/** A task from YAML, before vars are applied: its conditions, loop and templates are evaluated per host. */
export interface YamlTask extends Task {
  /** The `when:` as written when it is a bare var name or "not NAME" (what the unread-vars check reads). */
  whenVar?: string;
  templated: TemplatedParam[];
  /** Unique in the playbook: names the task for run_once. */
  id: number;
  /** "file:line:col: [0].tasks[1]" */
  at: string;
  /** Conditions of the enclosing blocks, then its own: all must hold. */
  conditions: Expr[];
  loop?: Loop;
  /** The name each item has (loop_control.loop_var; "item"). */
  loopVar: string;
  /** loop_control.label: a template shown for each item instead of the item. */
  loopLabel?: string;
  register?: string;
  changedWhen: Expr[];
  failedWhen: Expr[];
  runOnce: boolean;
  /** The run_once slot of a role's task: one per import of the role (unset: the task's id). */
  onceKey?: string;
  /** no_log: its output, diff and messages are hidden in every view. */
  noLog: boolean;
  /** become / become_user of the task or its blocks: who its command runs as (absent: the inventory's become settings). */
  become?: Become;
  /** delegate_to: the inventory host whose connection runs it (with this host's vars), and where it was written. */
  delegateTo?: { host: string; at: string };
  /** Vars of the task, of its blocks and of the include that brought it (values may be templates). */
  vars: Record<string, unknown>;
  /** "file:line:col: [0].tasks[1].notify" */
  notifyAt?: string;
  /** The registered results its conditions, loop, vars or params read: it is evaluated when it runs, not ahead. */
  registersRead: string[];
  /** Every top-level var its expressions, loop, label and vars read (params: see `templated`). */
  varsRead: string[];
  /** Every top-level var it reads anywhere (params included), but its loop var: what `registersRead` is picked from. */
  rootsRead: string[];
}

/**
 * A play's tasks as written: module tasks, blocks (block/rescue/always) and imported roles.
 * Blocks hand their when/tags/vars/ignore_errors/run_once down to their tasks at load time.
 */
export type TaskNode =
  | { kind: 'task'; task: YamlTask }
  | { kind: 'block'; name?: string; block: TaskNode[]; rescue: TaskNode[]; always: TaskNode[] }
  | { kind: 'role'; name: string; conditions: Expr[]; tags: string[]; at: string; vars: Record<string, unknown> };

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
  /** Every `register:` name a run of the play may see: a play var reading one is worked out once it is registered. */
  registers?: ReadonlySet<string>;
  roles: string[];
  /** Every module task of the play, blocks and includes flattened (what checks before connecting look at). */
  tasks: YamlTask[];
  /** The play's tasks as written (blocks, imported roles): what runs. */
  body: TaskNode[];
  /** Roles the play imports with import_role (their vars are checked as those of `roles:`). */
  importedRoles: string[];
  handlers: YamlTask[];
  serial?: number;
  maxFailPercentage?: number;
  /** "file:line:col" of the play's hosts. */
  hostsAt: string;
}

export interface Playbook {
  file: string;
  dir: string;
  plays: Play[];
  /** Every `register:` name of its tasks (a YAML role's: of the role's files). */
  registers: ReadonlySet<string>;
}

/**
 * A YAML role's tasks as a tree (blocks, includes, imported roles), walked on each host like a
 * play's body, so register, changed_when/failed_when, run_once and rescue/always work in a role
 * as in a play. Set by src/project/yaml-role.ts; a TypeScript role has none.
 */
export interface RoleTree {
  body: TaskNode[];
  /** Every module task of the tree, blocks and includes flattened. */
  tasks: YamlTask[];
  registers: ReadonlySet<string>;
  /** Roles it imports with import_role. */
  importedRoles: string[];
}

const roleTrees = new WeakMap<object, RoleTree>();

export function setRoleTree(role: object, tree: RoleTree): void {
  roleTrees.set(role, tree);
}

export function roleTree(role: object | undefined): RoleTree | undefined {
  return role ? roleTrees.get(role) : undefined;
}

/** The YAML roles being loaded, outermost first: an import_role of one of them is a cycle. */
const rolesLoading: string[] = [];

/** Load a role's files with its name on the stack (src/project/yaml-role.ts), so an import cycle is named, not a stack overflow. */
export function whileLoadingRole<T>(name: string, load: () => T): T {
  rolesLoading.push(name);
  try {
    return load();
  } finally {
    rolesLoading.pop();
  }
}

/**
 * Which registered results each task reads, from every register a run of these tasks may see (the
 * playbook's and its YAML roles'). Only ever adds: a role shared by two playbooks keeps both readings.
 */
function linkRegisters(tasks: readonly YamlTask[], registers: ReadonlySet<string>): void {
  for (const task of tasks) task.registersRead = [...new Set([...task.registersRead, ...task.rootsRead.filter((r) => registers.has(r))])];
}

/** Options of a task file read as a role's (src/project/yaml-role.ts). */
export interface RoleFileOptions {
  /** The role's folder: control paths (template, copy src…) are in its templates/ or files/. */
  roleDir: string;
}

/** What a task inherits from the blocks and includes around it. */
interface Inherited {
  conditions: Expr[];
  tags: string[];
  vars: Record<string, unknown>;
  ignoreErrors?: boolean;
  runOnce?: boolean;
  become?: Become;
  /** A block's environment: its command tasks' (their own win). */
  environment?: Record<string, unknown>;
  /** A block's delegate_to: where its tasks run (their own wins). */
  delegateTo?: { host: string; at: string };
}

/** A YAML file being read, and how its positions are named. */
interface Located {
  src: LocatedYaml;
  file: string;
  /** Included files, outermost first: an include of one of them is a cycle. */
  including: string[];
}

const whenVarOf = (when: unknown): string | undefined => (typeof when === 'string' && /^(not\s+)?[A-Za-z_][A-Za-z0-9_]*$/.test(when.trim()) ? when : undefined);

/**
 * What a task's become settings switch away from root, as the task says it (`become: false`,
 * `become_user: app`); undefined when its command still runs as root (what the inventory does anyway).
 */
function leavesRoot(b: Become | undefined): string | undefined {
  if (!b) return undefined;
  if (b.become === false) return 'become: false';
  return b.user === undefined || b.user === 'root' ? undefined : `become_user: ${b.user}`;
}

/**
 * Who a task runs as is the command's business only: files are written as root under the safe-path
 * rules (src/modules/lib/safe-path.ts), and a module's state is read by the connection's user, so
 * another user on a module that writes or reads the host would hold only for a part of what it does.
 * `become: true` (as root, what the inventory does anyway) is accepted on every module.
 */
function becomeSupported(module: string, b: Become, task: string): void {
  const what = leavesRoot(b);
  if (module === 'command' || what === undefined) return;
  throw new PlaybookError(
    `${b.at}: ${what} on a ${module} task ("${task}") is not supported: provision runs only commands as another user; ${module} reads and writes as root, under its safe-path rules`,
    'set owner/group (and mode) on what it writes instead, or run the step as a command task',
  );
}

/** `"{{ expr }}"` (a whole string that is one output) is the expression `expr`; any other string is an expression itself. */
function expressionText(text: string): string {
  const m = /^\s*\{\{([\s\S]*)\}\}\s*$/.exec(text);
  return m && !m[1]!.includes('}}') && !m[1]!.includes('{{') ? m[1]!.trim() : text;
}

let nextTaskId = 0;

class Loader {
  /** Every `register:` name of the playbook. */
  readonly registers = new Set<string>();
  readonly tasks: YamlTask[] = [];

  constructor(
    private readonly playbookFile: string,
    private readonly role?: RoleFileOptions,
  ) {}

  private at(l: Located, p: Array<string | number>): string {
    // A role's file is read as the tasks of one play: its paths are named as in that file ("[2].apt", not "[0].tasks[2].apt").
    const named = this.role && l.including.length === 0 && p.length >= 2 && p[0] === 0 && (p[1] === 'tasks' || p[1] === 'handlers') ? p.slice(2) : p;
    return `${whereIs(l.src, p)}: ${fieldName(named)}`;
  }

  /** Parse one expression now: a bad one is bad input, named by file:line:col. */
  expr(l: Located, p: Array<string | number>, value: string | boolean): Expr {
    const text = typeof value === 'boolean' ? String(value) : expressionText(value);
    const at = this.at(l, p);
    try {
      return { text, at, roots: analyzeExpression(text).roots };
    } catch (err) {
      if (err instanceof TemplateProblem) {
        const where = err.col ? ` (line ${err.line ?? 1}, column ${err.col} of the expression)` : '';
        throw new PlaybookError(`${at}: bad expression ${JSON.stringify(text)}: ${err.message}${where}`);
      }
      throw err;
    }
  }

  conditions(l: Located, p: Array<string | number>, value: string | boolean | Array<string | boolean> | undefined): Expr[] {
    if (value === undefined) return [];
    return Array.isArray(value) ? value.map((v, i) => this.expr(l, [...p, i], v)) : [this.expr(l, p, value)];
  }

  /** A list of tasks (a play's, a block's, an included file's), with what its container hands down. */
  list(l: Located, items: unknown[], p: Array<string | number>, inherited: Inherited, handlers: boolean): TaskNode[] {
    return items.map((raw, i) => this.node(l, raw, [...p, i], inherited, handlers));
  }

  private node(l: Located, raw: unknown, p: Array<string | number>, inherited: Inherited, handlers: boolean): TaskNode {
    const isStructure = !!raw && typeof raw === 'object' && !Array.isArray(raw) && STRUCTURE_KEYS.some((k) => k in raw);
    if (!isStructure) return { kind: 'task', task: this.task(l, raw, p, inherited, handlers) };
    if (handlers) throw new PlaybookError(`${this.at(l, p)}: a handler is one module task (no block, include or role import)`);
    const parsed = structureSchema.safeParse(raw);
    if (!parsed.success) throw new PlaybookError(schemaError(l.src, parsed.error.issues, p));
    const s = parsed.data;
    const kinds = (['block', 'include_tasks', 'import_tasks', 'import_role', 'include_role'] as const).filter((k) => s[k] !== undefined);
    if (kinds.length !== 1) throw new PlaybookError(`${this.at(l, p)}: one of block, include_tasks, import_tasks, import_role (found ${kinds.join(', ') || 'rescue/always without block'})`);
    const inner: Inherited = {
      conditions: [...inherited.conditions, ...this.conditions(l, [...p, 'when'], s.when)],
      tags: [...inherited.tags, ...(s.tags ?? [])],
      vars: { ...inherited.vars, ...(s.vars ?? {}) },
      ignoreErrors: s.ignore_errors ?? inherited.ignoreErrors,
      runOnce: s.run_once ?? inherited.runOnce,
      become: this.become(l, p, s, inherited.become),
      environment: s.environment ? { ...inherited.environment, ...s.environment } : inherited.environment,
      delegateTo: s.delegate_to !== undefined ? this.delegateTo(l, p, s.delegate_to) : inherited.delegateTo,
    };
    const kind = kinds[0]!;
    if (kind === 'import_role' || kind === 'include_role') {
      // A role's task tree is shared by every import of it: what runs where is the role's business.
      const key = (['delegate_to', 'environment'] as const).find((k) => s[k] !== undefined);
      if (key) throw new PlaybookError(`${this.at(l, [...p, key])}: ${key} on a role import is not supported`, "put it on the role's tasks");
    }
    if (inner.become !== inherited.become && (kind === 'import_role' || kind === 'include_role')) {
      throw new PlaybookError(`${inner.become!.at}: become on a role import is not supported yet`, "put become on the role's tasks, or set it in the inventory");
    }
    if (kind !== 'block' && (s.rescue || s.always)) throw new PlaybookError(`${this.at(l, [...p, s.rescue ? 'rescue' : 'always'])}: rescue and always belong to a block`);
    if (kind === 'block') {
      return {
        kind: 'block',
        name: s.name,
        block: this.list(l, s.block!, [...p, 'block'], inner, false),
        rescue: this.list(l, s.rescue ?? [], [...p, 'rescue'], inner, false),
        always: this.list(l, s.always ?? [], [...p, 'always'], inner, false),
      };
    }
    if (kind === 'import_role' || kind === 'include_role') {
      const name = s[kind]!.name;
      const loop = rolesLoading.indexOf(name);
      if (loop >= 0) {
        throw new PlaybookError(`${this.at(l, [...p, kind, 'name'])}: role import cycle: ${[...rolesLoading.slice(loop), name].join(' → ')}`, 'a role cannot import itself, directly or through other roles');
      }
      if (!getRole(name)) throw new PlaybookError(`${this.at(l, [...p, kind, 'name'])}: unknown role "${name}"`);
      for (const text of templatedStrings(s.vars ?? {})) {
        try {
          analyzeString(text.text);
        } catch (err) {
          if (err instanceof TemplateProblem) throw new PlaybookError(`${this.at(l, [...p, 'vars', ...text.path])}: ${err.described}`);
          throw err;
        }
      }
      // The import's vars are the role's (they override the play's and the inventory's for it), not handed to a block.
      return { kind: 'role', name, conditions: inner.conditions, tags: inner.tags, at: this.at(l, p), vars: s.vars ?? {} };
    }
    // include_tasks / import_tasks: read now, relative to the file that names it.
    const file = path.resolve(path.dirname(l.file), s[kind]!);
    if (isTemplate(file)) throw new PlaybookError(`${this.at(l, [...p, kind])}: the file to include is read when the playbook loads: it cannot be a template`);
    if ([...l.including, l.file].includes(file)) throw new PlaybookError(`${this.at(l, [...p, kind])}: ${s[kind]} includes itself (${[...l.including, l.file, file].map((f) => path.basename(f)).join(' → ')})`);
    let src: LocatedYaml;
    try {
      src = readYamlFile(file, 'included tasks', PlaybookError);
    } catch (err) {
      if (err instanceof PlaybookError && !err.message.startsWith(file)) throw new PlaybookError(`${this.at(l, [...p, kind])}: ${err.message}`);
      throw err;
    }
    const included: Located = { src, file, including: [...l.including, l.file] };
    if (!Array.isArray(src.data)) throw new PlaybookError(`${whereAt(src, 0)}: (top level): an included file is a list of tasks`);
    return { kind: 'block', name: s.name, block: this.list(included, src.data, [], inner, false), rescue: [], always: [] };
  }

  /** A relative control path of a task: the role's templates/ or files/ (it must be there), else next to the task's file. */
  private controlPath(l: Located, p: Array<string | number>, module: string, value: string): string {
    if (!this.role) return path.resolve(path.dirname(l.file), value);
    const folder = path.join(this.role.roleDir, module === 'template' ? 'templates' : 'files');
    const found = path.join(folder, value);
    if (!existsSync(found)) throw new PlaybookError(`${this.at(l, p)}: "${value}" not found in ${folder}${path.sep}`);
    return found;
  }

  /**
   * delegate_to: a host of the inventory, written as is (checked against the inventory before any
   * connection: checkDelegates). The control machine is no host: provision runs nothing locally.
   */
  private delegateTo(l: Located, p: Array<string | number>, value: string): { host: string; at: string } {
    const at = this.at(l, [...p, 'delegate_to']);
    if (isTemplate(value)) throw new PlaybookError(`${at}: delegate_to names a host of the inventory as it is written (not a template)`);
    if (['localhost', '127.0.0.1', '::1'].includes(value.trim())) {
      throw new PlaybookError(`${at}: delegate_to: ${value} is not supported: provision runs nothing on the control machine`, 'delegate to a host of the inventory, or run the local step before provision');
    }
    return { host: value.trim(), at };
  }

  /** A task's or block's become settings over those it inherits (its own keys win, one by one). */
  private become(l: Located, p: Array<string | number>, own: { become?: boolean; become_user?: string }, inherited: Become | undefined): Become | undefined {
    if (own.become === undefined && own.become_user === undefined) return inherited;
    const key = own.become_user !== undefined ? 'become_user' : 'become';
    const at = `${whereKey(l.src, [...p, key])}: ${fieldName([...p, key])}`;
    const user = own.become_user ?? inherited?.user;
    if (own.become_user !== undefined) {
      if (isTemplate(own.become_user)) {
        try {
          analyzeString(own.become_user);
        } catch (err) {
          if (err instanceof TemplateProblem) throw new PlaybookError(`${at}: ${err.described}`);
          throw err;
        }
      } else if (!USER_NAME.test(own.become_user)) {
        throw new PlaybookError(`${at}: "${own.become_user}" is not a user name (letters, digits, _, -, .; not starting with -)`);
      }
    }
    return { become: own.become ?? inherited?.become, user, at };
  }

  private task(l: Located, raw: unknown, p: Array<string | number>, inherited: Inherited, handlers: boolean): YamlTask {
    const parsed = taskSchema.safeParse(raw);
    if (!parsed.success) throw new PlaybookError(schemaError(l.src, parsed.error.issues, p));
    const t = parsed.data;
    const moduleKeys = Object.keys(t).filter((k) => !RESERVED.has(k));
    if (moduleKeys.length !== 1) {
      throw new PlaybookError(`${this.at(l, p)}: a task names exactly one module (found ${moduleKeys.length ? moduleKeys.join(', ') : 'none'})`);
    }
    const delegateTo = t.delegate_to !== undefined ? this.delegateTo(l, p, t.delegate_to) : inherited.delegateTo;
    if (handlers) {
      const loopKey = (['loop', 'register', 'run_once', 'delegate_to', 'environment', 'become', 'become_user'] as const).find((k) => t[k] !== undefined);
      if (loopKey) throw new PlaybookError(`${whereKey(l.src, [...p, loopKey])}: ${fieldName([...p, loopKey])}: not supported on a handler`);
    }
    // Ansible's names (ansible.builtin.apt, name: for packages: …) become ours here.
    const call = resolveModuleCall(t, moduleKeys[0]!, l.src, p, { inRole: this.role !== undefined });
    const module = call.module;
    const def = getModule(module);
    if (!def) throw new PlaybookError(`${whereKey(l.src, [...p, module])}: ${fieldName([...p, module])}: unknown module "${module}"`, `modules: ${moduleNames().join(', ')}`);
    const become = this.become(l, p, t, inherited.become);
    if (become) becomeSupported(module, become, t.name);
    let params = call.params;
    if (t.environment !== undefined && module !== 'command') {
      throw new PlaybookError(`${whereKey(l.src, [...p, 'environment'])}: ${fieldName([...p, 'environment'])}: environment is for command and shell tasks (${module} runs no command of yours)`);
    }
    // The command module hands its environment over on stdin (never argv): the task's and its blocks' join it
    // (a block's reaches only its command tasks: the other modules run no command of yours).
    if (module === 'command' && (t.environment !== undefined || inherited.environment !== undefined)) {
      const own = (params as { environment?: Record<string, unknown> }).environment ?? {};
      params = { ...(params as object), environment: { ...inherited.environment, ...t.environment, ...own } };
    }
    // Paths on the control machine (template sources, files to copy…): in a role, in its templates/ or
    // files/ (as in Ansible); in a playbook, relative to the file the task is in.
    const local = controlPathParams(def).filter((k) => {
      const v = params && typeof params === 'object' ? (params as Record<string, unknown>)[k] : undefined;
      return typeof v === 'string' && !path.isAbsolute(v) && !v.includes('{{');
    });
    if (local.length) {
      params = { ...(params as object), ...Object.fromEntries(local.map((k) => [k, this.controlPath(l, [...p, ...call.source([k])], module, (params as Record<string, string>)[k]!)])) };
    }
    const check = def.schema.safeParse(params);
    if (!check.success) {
      throw new PlaybookError(schemaError(l.src, check.error.issues.map((i) => ({ ...i, path: call.source(i.path) })), p));
    }
    const asOther = leavesRoot(become);
    const guard = asOther && (['unless', 'onlyif'] as const).find((k) => (params as Record<string, unknown>)[k] !== undefined);
    if (guard) {
      throw new PlaybookError(`${become!.at}: ${guard} with ${asOther} is not supported: ${guard} is a state read, run as the connection's user, not as the command's`, `put the check in the command itself (cmd: "CHECK || COMMAND")`);
    }
    // Templates are parsed now, so a syntax error, or a value placed where a command line cannot
    // escape it, is bad input named by file:line:col rather than a failure on every host.
    const templated = templatedStrings(params).map(({ path: pp, text }): TemplatedParam => {
      const where = this.at(l, [...p, ...call.source(pp)]);
      try {
        analyzeString(text, { shell: paramRules(module, pp[0]).shell });
      } catch (err) {
        if (err instanceof TemplateProblem) throw new PlaybookError(`${where}: ${err.described}`);
        throw err;
      }
      return { path: pp, text, at: where };
    });
    let loop: Loop | undefined;
    if (Array.isArray(t.loop)) {
      for (const s of templatedStrings(t.loop)) {
        try {
          analyzeString(s.text);
        } catch (err) {
          if (err instanceof TemplateProblem) throw new PlaybookError(`${this.at(l, [...p, 'loop', ...s.path])}: ${err.described}`);
          throw err;
        }
      }
      loop = { items: t.loop, at: this.at(l, [...p, 'loop']) };
    } else if (t.loop !== undefined) loop = { expr: this.expr(l, [...p, 'loop'], t.loop) };
    if (t.loop_control && !loop) throw new PlaybookError(`${whereKey(l.src, [...p, 'loop_control'])}: ${fieldName([...p, 'loop_control'])}: loop_control without loop`);
    const label = t.loop_control?.label;
    if (label !== undefined && isTemplate(label)) {
      try {
        analyzeString(label);
      } catch (err) {
        if (err instanceof TemplateProblem) throw new PlaybookError(`${this.at(l, [...p, 'loop_control', 'label'])}: ${err.described}`);
        throw err;
      }
    }
    const changedWhen = this.conditions(l, [...p, 'changed_when'], t.changed_when);
    const failedWhen = this.conditions(l, [...p, 'failed_when'], t.failed_when);
    const commandResult = module === 'command';
    if ((changedWhen.length || failedWhen.length) && !commandResult) {
      throw new PlaybookError(`${this.at(l, [...p, changedWhen.length ? 'changed_when' : 'failed_when'])}: changed_when and failed_when are for command tasks (their result is the command's exit code and output)`);
    }
    if (t.register) this.registers.add(t.register);
    const conditions = [...inherited.conditions, ...this.conditions(l, [...p, 'when'], t.when)];
    const task: YamlTask = {
      name: t.name,
      module,
      params,
      notify: t.notify === undefined ? undefined : Array.isArray(t.notify) ? t.notify : [t.notify],
      tags: [...new Set([...inherited.tags, ...(t.tags ?? [])])],
      whenVar: inherited.conditions.length === 0 ? whenVarOf(t.when) : undefined,
      ignoreErrors: t.ignore_errors ?? inherited.ignoreErrors,
      templated,
      notifyAt: t.notify === undefined ? undefined : this.at(l, [...p, 'notify']),
      id: nextTaskId++,
      at: this.at(l, p),
      conditions,
      loop,
      loopVar: t.loop_control?.loop_var ?? 'item',
      loopLabel: label,
      register: t.register,
      changedWhen,
      failedWhen,
      runOnce: t.run_once ?? inherited.runOnce ?? false,
      noLog: t.no_log ?? false,
      become,
      delegateTo,
      vars: { ...inherited.vars, ...(t.vars ?? {}) },
      registersRead: [],
      varsRead: [],
      rootsRead: [],
    };
    this.tasks.push(task);
    return task;
  }

  /** Once every task is read: which registered results each task reads (a register may come from a later play of the host). */
  resolveRegisters(): void {
    for (const task of this.tasks) {
      const roots = new Set<string>();
      for (const e of [...task.conditions, ...(task.loop && 'expr' in task.loop ? [task.loop.expr] : [])]) e.roots.forEach((r) => roots.add(r));
      const own = [...templatedStrings(task.vars).map((s) => s.text), ...(task.loop && 'items' in task.loop ? templatedStrings(task.loop.items).map((s) => s.text) : []), ...(task.loopLabel ? [task.loopLabel] : [])];
      for (const s of own) for (const r of analyzeString(s).paths) if (typeof r[0] === 'string') roots.add(r[0]);
      const exprRoots = new Set([...roots, ...[...task.changedWhen, ...task.failedWhen].flatMap((e) => e.roots)]);
      task.varsRead = [...exprRoots].filter((r) => r !== task.loopVar && r !== task.register);
      for (const s of task.templated) for (const r of analyzeString(s.text).paths) if (typeof r[0] === 'string') roots.add(r[0]);
      task.rootsRead = [...roots].filter((r) => r !== task.loopVar);
    }
    linkRegisters(this.tasks, this.registers);
  }

  get file(): string {
    return this.playbookFile;
  }
}

/** `read`: the file already read (a role's tasks file, wrapped as one play by src/project/yaml-role.ts). */
export function loadPlaybook(file: string, read?: LocatedYaml, role?: RoleFileOptions): Playbook {
  const src = read ?? readYamlFile(file, 'playbook', PlaybookError);
  if (src.data === null || src.data === undefined) {
    throw new PlaybookError(`${whereAt(src, 0)}: (top level): the playbook is empty`, 'a playbook is a list of plays: - name: …, hosts: …, tasks: […]');
  }
  const parsed = playbookSchema.safeParse(src.data);
  if (!parsed.success) throw new PlaybookError(schemaError(src, parsed.error.issues));
  /** "file:line:col: field" of a path: of its value. */
  const at = (p: Array<string | number>) => `${whereIs(src, p)}: ${fieldName(p)}`;
  const loader = new Loader(file, role);
  const located: Located = { src, file, including: [] };
  const none: Inherited = { conditions: [], tags: [], vars: {} };
  const plays = parsed.data.map((p, pi): Play => {
    (p.roles ?? []).forEach((r, ri) => {
      if (!getRole(r)) throw new PlaybookError(`${at([pi, 'roles', ri])}: unknown role "${r}"`);
    });
    const before = loader.tasks.length;
    const body = loader.list(located, p.tasks ?? [], [pi, 'tasks'], none, false);
    const tasks = loader.tasks.slice(before);
    const handlers = loader.list(located, p.handlers ?? [], [pi, 'handlers'], none, true).map((n) => (n as Extract<TaskNode, { kind: 'task' }>).task);
    const importedRoles: string[] = [];
    const findRoles = (nodes: TaskNode[]): void =>
      nodes.forEach((n) => (n.kind === 'role' ? importedRoles.push(n.name) : n.kind === 'block' ? [n.block, n.rescue, n.always].forEach(findRoles) : undefined));
    findRoles(body);
    return {
      name: p.name,
      hosts: p.hosts,
      hostsAt: whereIs(src, [pi, 'hosts']),
      vars: p.vars ?? {},
      varSource: (name: string) => (p.vars && name in p.vars ? whereIs(src, [pi, 'vars', name]) : undefined),
      roles: p.roles ?? [],
      tasks,
      body,
      importedRoles: [...new Set(importedRoles)],
      handlers,
      serial: p.serial,
      maxFailPercentage: p.max_fail_percentage,
    };
  });
  loader.resolveRegisters();
  // A task reads what the play vars it reads read (a registered result among them: it is evaluated when it runs).
  for (const play of plays) {
    const through = playVarRoots(play.vars);
    for (const t of [...play.tasks, ...play.handlers]) t.rootsRead = [...new Set([...t.rootsRead, ...t.rootsRead.flatMap((r) => through.get(r) ?? [])])];
  }
  // A register of a YAML role is read by later tasks of the play, and the play's by the role's tasks.
  const trees = reachableRoleTrees(plays.flatMap((p) => [...p.roles, ...p.importedRoles]));
  const registers = new Set([...loader.registers, ...trees.flatMap((t) => [...t.registers])]);
  for (const play of plays) play.registers = registers;
  linkRegisters([...loader.tasks, ...trees.flatMap((t) => t.tasks)], registers);
  // Imported roles and handlers are expanded before the play runs: their conditions cannot wait for a result.
  const early = (conditions: readonly Expr[], what: string) => {
    for (const c of conditions) {
      const read = c.roots.find((r) => loader.registers.has(r));
      if (read !== undefined) throw new PlaybookError(`${c.at}: ${what} cannot read the registered result "${read}" (not supported yet): put the condition on the role's or handler's tasks, or on a task that notifies it`);
    }
  };
  for (const play of plays) {
    for (const r of roleNodes(play.body)) early(r.conditions, `the when of import_role "${r.name}"`);
    for (const h of play.handlers) {
      early(h.conditions, `a handler's when`);
      if (h.registersRead.length) throw new PlaybookError(`${h.at}: a handler cannot read the registered result "${h.registersRead[0]}" (not supported yet)`);
    }
  }
  // A misspelt notify would silently never run its handler (and stay owed on the host forever).
  // Roles bring handlers of their own, built per host, so plays with roles are not checked.
  const known = new Set(plays.flatMap((p) => p.handlers.map((h) => h.name)));
  for (const play of plays) {
    if (play.roles.length || play.importedRoles.length) continue;
    for (const t of [...play.tasks, ...play.handlers]) {
      const unknown = (t.notify ?? []).find((n) => !known.has(n));
      if (unknown === undefined) continue;
      throw new PlaybookError(
        `${t.notifyAt}: no handler named "${unknown}"`,
        known.size ? `handlers: ${[...known].join(', ')}` : 'the playbook defines no handlers',
      );
    }
  }
  return { file, dir: path.dirname(file), plays, registers: loader.registers };
}

/** Each play var's reads, through the other play vars it reads (a var's own name apart). */
function playVarRoots(vars: Record<string, unknown>): Map<string, string[]> {
  const direct = new Map(Object.entries(vars).map(([name, v]) => [name, templatedStrings(v).flatMap((s) => analyzeString(s.text).paths.flatMap((p) => (typeof p[0] === 'string' ? [p[0]] : [])))]));
  const closure = new Map<string, string[]>();
  for (const name of direct.keys()) {
    const seen = new Set<string>();
    const visit = (n: string): void => {
      for (const r of direct.get(n) ?? []) {
        if (seen.has(r)) continue;
        seen.add(r);
        if (direct.has(r)) visit(r);
      }
    };
    visit(name);
    closure.set(name, [...seen]);
  }
  return closure;
}

/** The role imports among these nodes (blocks and includes looked into). */
export function roleNodes(nodes: readonly TaskNode[]): Array<Extract<TaskNode, { kind: 'role' }>> {
  return nodes.flatMap((n) => (n.kind === 'role' ? [n] : n.kind === 'block' ? [n.block, n.rescue, n.always].flatMap(roleNodes) : []));
}

/** The trees of these roles' YAML roles, of their dependencies and of the roles they import, each once. */
function reachableRoleTrees(names: readonly string[]): RoleTree[] {
  const seen = new Set<string>();
  const trees: RoleTree[] = [];
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const role = getRole(name);
    const tree = roleTree(role);
    if (tree) trees.push(tree);
    [...(role?.dependencies ?? []), ...(tree?.importedRoles ?? [])].forEach(visit);
  };
  names.forEach(visit);
  return trees;
}

/** Every module task a run of the playbook may run: the plays' and their YAML roles' (handlers apart). */
export function everyTask(playbook: Playbook): YamlTask[] {
  return [...playbook.plays.flatMap((p) => p.tasks), ...reachableRoleTrees(playbook.plays.flatMap((p) => [...p.roles, ...p.importedRoles])).flatMap((t) => t.tasks)];
}

/** Before any connection: every delegate_to names a host of the inventory (else exit 4, naming where). */
export function checkDelegates(inventory: Inventory, playbook: Playbook): void {
  for (const t of everyTask(playbook)) {
    if (t.delegateTo && !inventory.hosts.has(t.delegateTo.host)) {
      throw new PlaybookError(`${t.delegateTo.at}: delegate_to: "${t.delegateTo.host}" is not a host of inventory ${inventory.name}`, `hosts: ${[...inventory.hosts.keys()].slice(0, 10).join(', ')}`);
    }
  }
}

/**
 * Before any connection: a "{{ … }}" that reads a secret on any selected host may only stand in a
 * param its module takes secrets in — never in a command line (cmd, unless, onlyif, validate…),
 * where ps and sudo's log would show it, nor in a path or name that ends up in one.
 * The inventory's vars are all known now (facts, read later, are never secrets).
 */
export function checkSecretsInParams(inventory: Inventory, playbook: Playbook, hosts: string[]): void {
  for (const play of playbook.plays) {
    const targets = playTargets(inventory, play.hosts).hosts.filter((h) => hosts.includes(h));
    // The play's vars are worked out on each host now: a cycle or a var nobody set is bad input, found before connecting.
    for (const name of targets) playVars(inventory.hosts.get(name)!, play);
    // A YAML role's tasks too: a secret of the inventory in a role's command line is refused before connecting as well.
    const roleTasks = reachableRoleTrees([...play.roles, ...play.importedRoles]).flatMap((tree) => tree.tasks);
    for (const task of [...play.tasks, ...play.handlers, ...roleTasks]) {
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
