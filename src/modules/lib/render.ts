import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import nunjucks from 'nunjucks';
import transformer from 'nunjucks/src/transformer.js';
import { PlaybookError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';
import { escapeForShell, ShellScanner, type ShellContext } from './shell-context.js';

/*
 * Rendering of templates (files) and of "{{ … }}" in YAML task params, with two guarantees:
 * - in params that are shell command lines, every value a template puts in is escaped for where it
 *   stands (the SAFE default, like HTML autoescaping; `| safe` opts out for trusted fragments);
 * - what a template reads is known before it runs (its var paths), so a template that reads a
 *   secret is sensitive, and a command line that would read one is refused before any connection.
 * Nunjucks has no hook for either, so strings are parsed and compiled here from its AST.
 */

/** The parts of nunjucks' AST and internals used here (its types do not declare them). */
interface AstNode {
  typename: string;
  lineno: number;
  colno: number;
  fields: string[];
  value?: unknown;
  children?: AstNode[];
  [field: string]: unknown;
}
type NodeClass = new (lineno: number, colno: number, ...fields: unknown[]) => AstNode;
interface NunjucksInternals {
  parser: { parse(src: string, extensions: unknown[], opts: unknown): AstNode };
  nodes: Record<'Node' | 'Filter' | 'Symbol' | 'NodeList' | 'Literal', NodeClass>;
  compiler: { Compiler: new (name: string, throwOnUndefined: boolean) => { compile(ast: unknown): void; getCode(): string } };
  runtime: { SafeString: new (s: string) => { val: string; toString(): string }; markSafe(s: string): { val: string } };
  lib: { TemplateError: new (message: string, lineno: number, colno: number) => Error };
}
interface EnvironmentInternals {
  opts: { throwOnUndefined?: boolean };
  asyncFilters: string[];
  extensionsList: unknown[];
  loaders: Array<{ getSource(name: string): { src: string; path: string } | null }>;
}
const nj = nunjucks as unknown as NunjucksInternals;

/** A template that cannot be used, with its position inside the template text (1-based) when known. */
export class TemplateProblem extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly col?: number,
  ) {
    super(message);
  }
  /** "message (line 1, column 9 of the template)" */
  get described(): string {
    return this.line ? `${this.message} (line ${this.line}, column ${this.col} of the template)` : this.message;
  }
}

/** The var paths a template reads (["db", "password"] for db.password); `anything` when it includes a template picked at render time. */
export interface TemplateReads {
  paths: ReadonlyArray<ReadonlyArray<string | number>>;
  anything: boolean;
}

// ---------------------------------------------------------------------------------------------
// Filters

/** `| quote` results keep the value they quote, so inside '…' or "…" of a command line they are escaped for there instead. */
const quotedValues = new WeakMap<object, string | string[]>();

function asShellValue(v: unknown): string | string[] {
  return Array.isArray(v) ? v.map((x) => String(x)) : String(v);
}

/** `{{ x | quote }}`: x as one POSIX sh word (a list: one word per item), for any template. */
function quoteFilter(v: unknown): unknown {
  if (v === undefined || v === null) throw new Error('quote: the value is undefined');
  const raw = asShellValue(v);
  const safe = nj.runtime.markSafe(escapeForShell('word', raw));
  quotedValues.set(safe, raw);
  return safe;
}

/**
 * `| safe` results. Only these go into a command line as written: nunjucks marks other values
 * "safe" too (`| escape` output, what some filters copy that mark to), and those are not shell-safe.
 */
const trustedValues = new WeakSet<object>();

/** `{{ x | safe }}`: a trusted fragment, put in as written (nunjucks' own `safe`, remembered). */
function safeFilter(v: unknown): unknown {
  const safe = nj.runtime.markSafe(v === undefined || v === null ? '' : String(v));
  trustedValues.add(safe);
  return safe;
}

/** Put in by the compiler around every output of a command-line param: escape the value for its place. */
function shellFilter(v: unknown, context: ShellContext, lineno: number, colno: number): string {
  if (v === undefined || v === null) throw new nj.lib.TemplateError('attempted to output null or undefined value', lineno + 1, colno + 1);
  if (v instanceof nj.runtime.SafeString) {
    if (trustedValues.has(v)) return v.val;
    // `| quote`: re-escaped for where it stands.
    const raw = quotedValues.get(v);
    return escapeForShell(context, raw ?? v.val);
  }
  return escapeForShell(context, asShellValue(v));
}

const environments = new Map<string, nunjucks.Environment>();
function environment(dir: string): nunjucks.Environment {
  let env = environments.get(dir);
  if (!env) {
    // throwOnUndefined: a template that names a var nobody set is an error, never an empty string.
    env = new nunjucks.Environment(new nunjucks.FileSystemLoader(dir, { noCache: false }), {
      autoescape: false,
      throwOnUndefined: true,
      trimBlocks: true,
      lstripBlocks: true,
    });
    env.addFilter('quote', quoteFilter);
    env.addFilter('safe', safeFilter);
    env.addFilter('__shell', shellFilter);
    addExpressionFilters(env);
    environments.set(dir, env);
  }
  return env;
}

const internals = (env: nunjucks.Environment) => env as unknown as EnvironmentInternals;

// ---------------------------------------------------------------------------------------------
// Reads

/** The var path an expression names (db.password, db["password"], hosts[0]), or undefined when a part is computed. */
function varPath(node: AstNode): Array<string | number> | undefined {
  if (node.typename === 'Symbol') return [String(node.value)];
  if (node.typename !== 'LookupVal') return undefined;
  const target = varPath(node.target as AstNode);
  const key = node.val as AstNode;
  if (!target || key.typename !== 'Literal' || (typeof key.value !== 'string' && typeof key.value !== 'number')) return undefined;
  return [...target, key.value];
}

const INCLUDING = new Set(['Include', 'Extends', 'Import', 'FromImport']);

/**
 * Every var path an AST reads. Over-approximates (a loop variable or a {% set %} target that
 * shadows a var counts as reading it): a template is never thought not to read what it reads.
 */
function collectReads(root: AstNode, onInclude: (name: string | undefined) => void): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [];
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!v || typeof v !== 'object' || !('typename' in v)) return;
    const node = v as AstNode;
    if (node.typename === 'Symbol' || node.typename === 'LookupVal') {
      const p = varPath(node);
      if (p) return void out.push(p);
    }
    if (INCLUDING.has(node.typename)) {
      const t = node.template as AstNode;
      onInclude(t.typename === 'Literal' && typeof t.value === 'string' ? t.value : undefined);
    }
    for (const field of node.fields) {
      // A filter's name is not a var.
      if ((node.typename === 'Filter' || node.typename === 'FilterAsync') && field === 'name') continue;
      visit(node[field]);
    }
  };
  visit(root);
  return out;
}

function parse(env: nunjucks.Environment, text: string): AstNode {
  try {
    return nj.parser.parse(text, internals(env).extensionsList, internals(env).opts);
  } catch (err) {
    const e = err as Error & { lineno?: number; colno?: number };
    throw new TemplateProblem(e.message.replace(/\s+/g, ' ').trim(), e.lineno, e.colno);
  }
}

// ---------------------------------------------------------------------------------------------
// Command lines: every output escaped for where it stands

const NOT_IN_COMMAND_LINES: Record<string, string> = {
  Macro: '{% macro %}',
  Caller: '{% call %}',
  Include: '{% include %}',
  Extends: '{% extends %}',
  Block: '{% block %}',
  Import: '{% import %}',
  FromImport: '{% from … import %}',
  Capture: '{% set %} … {% endset %} or {% filter %}',
  CallExtension: 'an extension tag',
  CallExtensionAsync: 'an extension tag',
};

function refuse(node: AstNode, what: string): never {
  throw new TemplateProblem(`${what} is not supported in a command line: compute the value in a var, or use a template file`, node.lineno + 1, node.colno + 1);
}

/** Refuse the statements whose output does not stay where it is written (macros, includes…). */
function refuseMovedOutput(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(refuseMovedOutput);
  if (!node || typeof node !== 'object' || !('typename' in node)) return;
  const n = node as AstNode;
  const what = NOT_IN_COMMAND_LINES[n.typename];
  if (what) refuse(n, what);
  for (const field of n.fields) refuseMovedOutput(n[field]);
}

/**
 * Wrap every output of a command-line template in the __shell filter with the quoting context
 * the literal text around it puts it in. Branches of {% if %} / {% for %} must leave the quoting
 * as they found it, so each output's context is known whatever path the rendering takes.
 */
function placeShellValues(root: AstNode): void {
  refuseMovedOutput(root);
  const walk = (node: AstNode | null | undefined, s: ShellScanner): ShellScanner => {
    if (!node) return s;
    switch (node.typename) {
      case 'Root':
      case 'NodeList':
        for (const child of node.children ?? []) s = walk(child, s);
        return s;
      case 'Output':
        node.children = (node.children ?? []).map((child) => {
          if (child.typename === 'TemplateData') {
            s.feed(String(child.value ?? ''));
            return child;
          }
          const context = s.context();
          if (typeof context !== 'string') throw new TemplateProblem(`a value ${context.refused} cannot be escaped reliably in a command line`, child.lineno + 1, child.colno + 1);
          s.placedValue();
          const { Filter, Symbol: Sym, NodeList, Literal } = nj.nodes;
          const at = (v: unknown) => new Literal(child.lineno, child.colno, v);
          return new Filter(child.lineno, child.colno, new Sym(child.lineno, child.colno, '__shell'), new NodeList(child.lineno, child.colno, [child, at(context), at(child.lineno), at(child.colno)]));
        });
        return s;
      case 'If':
      case 'IfAsync': {
        const body = walk(node.body as AstNode, s.clone());
        const other = walk(node.else_ as AstNode | null, s.clone());
        if (body.key() !== other.key()) throw new TemplateProblem('the branches of this {% if %} leave the command line quoted differently: close quotes inside each branch', node.lineno + 1, node.colno + 1);
        return body;
      }
      case 'For':
      case 'AsyncEach':
      case 'AsyncAll': {
        for (const part of [node.body, node.else_] as Array<AstNode | null>) {
          if (part && walk(part, s.clone()).key() !== s.key()) throw new TemplateProblem('the body of this {% for %} leaves the command line quoted differently than it found it', node.lineno + 1, node.colno + 1);
        }
        return s;
      }
      case 'Switch': {
        const ends = [...((node.cases as AstNode[]) ?? []).map((c) => walk(c.body as AstNode, s.clone())), walk(node.default as AstNode | null, s.clone())];
        if (ends.some((e) => e.key() !== ends[0]!.key())) throw new TemplateProblem('the cases of this {% switch %} leave the command line quoted differently', node.lineno + 1, node.colno + 1);
        return ends[0]!;
      }
      default:
        return s;
    }
  };
  walk(root, new ShellScanner());
}

// ---------------------------------------------------------------------------------------------
// Strings (YAML task params)

interface CompiledString {
  template: nunjucks.Template;
  reads: TemplateReads;
}
const compiledStrings = new Map<string, CompiledString>();

/** Parse, check and compile a template string once; `shell` for a param that is a command line. */
function compileString(text: string, shell: boolean): CompiledString {
  const key = `${shell ? 'sh' : 'text'}\0${text}`;
  const cached = compiledStrings.get(key);
  if (cached) return cached;
  const env = environment(process.cwd());
  const ast = parse(env, text);
  let anything = false;
  const paths = collectReads(ast, () => (anything = true));
  if (shell) placeShellValues(ast);
  const env_ = internals(env);
  // As nunjucks compiles a string itself (it names no path: "(unknown path)" in its messages).
  const compiler = new nj.compiler.Compiler(undefined as unknown as string, Boolean(env_.opts.throwOnUndefined));
  compiler.compile(transformer.transform(ast, env_.asyncFilters));
  const props = new Function(compiler.getCode())() as object;
  const template = new nunjucks.Template({ type: 'code', obj: props } as unknown as string, env);
  const out = { template, reads: { paths, anything } };
  compiledStrings.set(key, out);
  return out;
}

/** What a template string reads; throws TemplateProblem when it cannot be rendered (syntax, a command line it cannot escape). */
export function analyzeString(text: string, opts: { shell?: boolean } = {}): TemplateReads {
  return compileString(text, Boolean(opts.shell)).reads;
}

/** Whether a string is a template at all. */
export function isTemplate(text: string): boolean {
  return text.includes('{{') || text.includes('{%');
}

/** Render "{{ … }}" in a string; with shell, every value is escaped for its place in the command line. */
export function renderString(text: string, vars: Record<string, unknown>, opts: { shell?: boolean } = {}): string {
  return compileString(text, Boolean(opts.shell)).template.render(revealAll(vars) as object);
}

// ---------------------------------------------------------------------------------------------
// Files (the template module)

const fileReads = new Map<string, TemplateReads>();

/** What a template file reads, with every template it includes by a literal name (cached like the compiled template). */
export function templateFileReads(file: string): TemplateReads {
  const cached = fileReads.get(file);
  if (cached) return cached;
  const env = environment(path.dirname(file));
  const loader = internals(env).loaders[0]!;
  const paths: Array<ReadonlyArray<string | number>> = [];
  let anything = false;
  const seen = new Set<string>();
  const read = (name: string, src: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const included: string[] = [];
    paths.push(...collectReads(parse(env, src), (n) => (n === undefined ? (anything = true) : included.push(n))));
    for (const n of included) {
      // As nunjucks resolves them: "./x" and "../x" from the including template's name, others in the folder.
      const resolved = n.startsWith('./') || n.startsWith('../') ? path.resolve(path.dirname(name), n) : n;
      const source = loader.getSource(resolved);
      if (source) read(resolved, source.src);
    }
  };
  read(path.basename(file), readFileSync(file, 'utf8'));
  const reads = { paths, anything };
  fileReads.set(file, reads);
  return reads;
}

export function renderTemplate(file: string, vars: Record<string, unknown>): string {
  if (!existsSync(file)) throw new PlaybookError(`template ${file} does not exist`);
  try {
    return environment(path.dirname(file)).render(path.basename(file), revealAll(vars) as object);
  } catch (err) {
    const msg = (err as Error).message.replace(/\s+/g, ' ').trim();
    // Nunjucks names only a position ("[Line 3, Column 8] attempted to output null or undefined value"):
    // show the template line, so the variable nobody set is in the message.
    const at = /\[Line (\d+), Column \d+\]/.exec(msg);
    const line = at ? readFileSync(file, 'utf8').split('\n')[Number(at[1]) - 1]?.trim() : undefined;
    throw new PlaybookError(`template ${file}: ${msg}${line ? ` (in: ${line})` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/** Secrets become their values for the renderer (outputs that hold them are sensitive or masked). */
function revealAll(v: unknown): unknown {
  if (v instanceof Secret) return v.reveal();
  if (Array.isArray(v)) return v.map(revealAll);
  if (isPlain(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revealAll(x)]));
  return v;
}

function holdsSecret(v: unknown, depth = 0): boolean {
  if (v instanceof Secret) return true;
  if (depth > 32) return false;
  if (Array.isArray(v)) return v.some((x) => holdsSecret(x, depth + 1));
  if (isPlain(v)) return Object.values(v).some((x) => holdsSecret(x, depth + 1));
  return false;
}

/**
 * The vars (as "a.b" paths) through which a template's reads reach a secret in these vars: a read
 * of a secret, of anything inside one, or of a map or list that holds one (a loop over it, `| dump`).
 */
export function secretsRead(reads: TemplateReads, vars: Record<string, unknown>): string[] {
  const hits = new Set<string>();
  if (reads.anything) for (const [k, v] of Object.entries(vars)) if (holdsSecret(v)) hits.add(k);
  for (const p of reads.paths) {
    let cur: unknown = vars;
    for (let i = 0; i <= p.length; i++) {
      if (cur instanceof Secret || (i === p.length && holdsSecret(cur))) {
        hits.add(p.slice(0, Math.max(i, 1)).join('.'));
        break;
      }
      if (i === p.length || !(isPlain(cur) || Array.isArray(cur))) break;
      const key = p[i]!;
      if (!Object.prototype.hasOwnProperty.call(cur, key)) break;
      cur = (cur as Record<string | number, unknown>)[key];
    }
  }
  return [...hits].sort();
}

// ---------------------------------------------------------------------------------------------
// Expressions (the task language: when, loop, changed_when, failed_when)

/** An expression as a template: `{{ (EXPR) }}`; positions inside it are shifted back by this prefix. */
const EXPRESSION_OPEN = '{{ (';

/** Names an expression reads as vars: every root of a var path, but not test names (`is defined`) nor functions' names. */
function expressionRoots(root: AstNode): Set<string> {
  const roots = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!v || typeof v !== 'object' || !('typename' in v)) return;
    const node = v as AstNode;
    if (node.typename === 'Symbol') return void roots.add(String(node.value));
    for (const field of node.fields) {
      if ((node.typename === 'Filter' || node.typename === 'FilterAsync') && field === 'name') continue;
      if (node.typename === 'Is' && field === 'right') {
        // `x is divisibleby(3)`: the test's arguments are read, its name is not.
        const test = node.right as AstNode;
        if (test.typename === 'FunCall') visit(test.args);
        continue;
      }
      visit(node[field]);
    }
  };
  visit(root);
  return roots;
}

/** What a parsed expression reads. */
export interface ExpressionReads {
  /** Top-level var names it reads (registered results, loop vars, inventory vars, facts). */
  roots: string[];
  /** It tests definedness or gives a default: an undefined var is then its business, not an error. */
  guarded: boolean;
}

const compiledExpressions = new Map<string, { template: nunjucks.Template; reads: ExpressionReads }>();
/** Where the expression being evaluated puts its value (rendering is synchronous: one at a time). */
let expressionValue: { value: unknown } | undefined;

function compileExpression(expr: string): { template: nunjucks.Template; reads: ExpressionReads } {
  const cached = compiledExpressions.get(expr);
  if (cached) return cached;
  const env = environment(process.cwd());
  const shift = (line?: number, col?: number) => (line === 1 && col !== undefined ? Math.max(1, col - EXPRESSION_OPEN.length) : col);
  let ast: AstNode;
  try {
    ast = parse(env, `${EXPRESSION_OPEN}${expr}\n) }}`);
  } catch (err) {
    const p = err as TemplateProblem;
    const message = p.message.replace(/\[Line \d+, Column \d+\]\s*/g, '').replace(/^parse\w+: /, '');
    // Past its last line: the parser reached the closing parenthesis put around it.
    if ((p.line ?? 0) > expr.split('\n').length) throw new TemplateProblem(`the expression ends too early (${message.replace(/unexpected token: \)/, 'nothing after the last operator')})`);
    throw new TemplateProblem(message, p.line, shift(p.line, p.col));
  }
  // Exactly one output holding one expression: `x }}{{ y` or a `{% … %}` tag inside is not an expression.
  const outputs = (ast.children ?? []).filter((c) => !(c.typename === 'Output' && (c.children ?? []).every((x) => x.typename === 'TemplateData' && String(x.value).trim() === '')));
  const only = outputs[0];
  if (outputs.length !== 1 || only!.typename !== 'Output' || only!.children?.length !== 1 || only!.children[0]!.typename === 'TemplateData') {
    throw new TemplateProblem('not one expression (write it without {{ }} or {% %})');
  }
  refuseMovedOutput(ast);
  const roots = expressionRoots(only!.children[0]!);
  const guarded = /\b(defined|undefined|default|d)\b/.test(expr);
  const { Filter, Symbol: Sym, NodeList } = nj.nodes;
  const value = only!.children[0]!;
  only!.children = [new Filter(value.lineno, value.colno, new Sym(value.lineno, value.colno, '__value'), new NodeList(value.lineno, value.colno, [value]))];
  const env_ = internals(env);
  const compiler = new nj.compiler.Compiler(undefined as unknown as string, Boolean(env_.opts.throwOnUndefined));
  compiler.compile(transformer.transform(ast, env_.asyncFilters));
  const props = new Function(compiler.getCode())() as object;
  const template = new nunjucks.Template({ type: 'code', obj: props } as unknown as string, env);
  const out = { template, reads: { roots: [...roots], guarded } };
  compiledExpressions.set(expr, out);
  return out;
}

/** Parse an expression (a `when:`, a `loop:`…) once; throws TemplateProblem (position inside the expression) when it is not one. */
export function analyzeExpression(expr: string): ExpressionReads {
  return compileExpression(expr).reads;
}

/** Names nunjucks does not know that YAML writers use as constants (Python's spelling). */
const PYTHON_CONSTANTS = { True: true, False: false, None: null };

/**
 * An expression's value over these vars. A var it reads that is not defined is an error (as in
 * Ansible), unless the expression tests definedness or gives a default.
 */
export function evaluateExpression(expr: string, vars: Record<string, unknown>): unknown {
  const { template, reads } = compileExpression(expr);
  if (!reads.guarded) {
    const missing = reads.roots.find((r) => !(r in vars) && !(r in PYTHON_CONSTANTS));
    if (missing !== undefined) throw new TemplateProblem(`var "${missing}" is not defined`);
  }
  const slot = { value: undefined as unknown };
  expressionValue = slot;
  try {
    template.render({ ...PYTHON_CONSTANTS, ...(revealAll(vars) as object) });
  } catch (err) {
    throw new TemplateProblem((err as Error).message.replace(/\(unknown path\)/g, '').replace(/\[Line \d+, Column \d+\]/g, '').replace(/\s+/g, ' ').trim());
  } finally {
    expressionValue = undefined;
  }
  return slot.value;
}

/** Truth as Jinja (Python) has it: empty lists, maps and strings are false, as are 0, none and undefined. */
export function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (isPlain(v)) return Object.keys(v).length > 0;
  if (v instanceof Secret) return truthy(v.reveal());
  return Boolean(v);
}

/** `x | bool`: Ansible's filter ("yes", "on", "1", "true" are true; anything else by truth). */
function boolFilter(v: unknown): boolean {
  if (typeof v === 'string') return ['yes', 'on', '1', 'true', 'y', 't'].includes(v.trim().toLowerCase());
  return truthy(v);
}

/** Called by the compiled expression with its value. */
function valueFilter(v: unknown): string {
  if (expressionValue) expressionValue.value = v;
  return '';
}

/** The filters expressions need, on the environment every string is compiled with. */
function addExpressionFilters(env: nunjucks.Environment): void {
  env.addFilter('__value', valueFilter);
  env.addFilter('bool', boolFilter);
}
