import nunjucks from 'nunjucks';
import { InventoryError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';

/*
 * "{{ … }}" in inventory vars (Ansible's `mysql_app_password: "{{ vault_mysql_app_password }}"`),
 * evaluated once per host with that host's vars, as Ansible evaluates them:
 * - a string that is one "{{ expression }}" and nothing else keeps the expression's type (a list,
 *   a number, a Secret); anything else renders to a string;
 * - only the vars the text names are looked up (each lazily, so a vault value is decrypted only
 *   when a template that is used reads it);
 * - reading a secret (directly, inside a map or list, or through hostvars) makes the result secret.
 * Nunjucks is Jinja's syntax; its Context copies every var it is given, so it is given only those
 * the text names.
 */

/** A template that cannot be evaluated; the message never quotes a value. */
export class TemplateFailure extends Error {
  constructor(
    message: string,
    /** Names the text reads that are not defined (for "X is undefined"). */
    readonly undefinedNames: string[] = [],
  ) {
    super(message);
  }
}

export type Lookup = (name: string) => { found: boolean; value?: unknown };

interface AstNode {
  typename: string;
  fields: string[];
  value?: unknown;
  [field: string]: unknown;
}
const nj = nunjucks as unknown as { parser: { parse(src: string, extensions: unknown[], opts: unknown): AstNode } };

const OUT = '__provision_out';

let env: nunjucks.Environment | undefined;
function environment(): nunjucks.Environment {
  if (env) return env;
  // dev: errors keep their cause (a var's own error, raised while the template read it), which is rethrown as it is.
  env = new nunjucks.Environment([], { autoescape: false, throwOnUndefined: true, dev: true });
  env.addFilter('__capture', (value: unknown, holder: { value?: unknown }) => {
    holder.value = value;
    return '';
  });
  // Ansible's | bool, as its filter reads strings ("yes", "on", "1", "true").
  env.addFilter('bool', (v: unknown) => (typeof v === 'string' ? ['yes', 'on', '1', 'true', 'y', 't'].includes(v.trim().toLowerCase()) : Boolean(v)));
  return env;
}

interface Compiled {
  template: nunjucks.Template;
  names: string[];
  native: boolean;
}
const compiled = new Map<string, Compiled>();

/** The names a template reads at top level (over-approximated: loop variables count too). */
function namesRead(root: AstNode): string[] {
  const out = new Set<string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (!v || typeof v !== 'object' || !('typename' in v)) return;
    const node = v as AstNode;
    if (node.typename === 'Symbol') out.add(String(node.value));
    for (const field of node.fields) {
      if ((node.typename === 'Filter' || node.typename === 'FilterAsync') && field === 'name') continue;
      visit(node[field]);
    }
  };
  visit(root);
  out.delete(OUT);
  return [...out];
}

/** The inside of a text that is exactly one "{{ … }}", or undefined. */
function singleExpression(text: string): string | undefined {
  const m = /^\{\{([\s\S]*)\}\}$/.exec(text);
  if (!m) return undefined;
  const inner = m[1]!;
  if (inner.includes('{{') || inner.includes('}}') || /^-|-$/.test(inner) || inner.trim() === '') return undefined;
  return inner;
}

function compile(text: string, describe: (err: unknown) => string): Compiled {
  const cached = compiled.get(text);
  if (cached) return cached;
  const inner = singleExpression(text);
  const source = inner !== undefined ? `{{ (${inner}) | __capture(${OUT}) }}` : text;
  let result: Compiled;
  try {
    const ast = nj.parser.parse(source, [], {});
    const template = new nunjucks.Template(source, environment(), undefined, true);
    result = { template, names: namesRead(ast), native: inner !== undefined };
  } catch (err) {
    throw new TemplateFailure(describe(err));
  }
  compiled.set(text, result);
  return result;
}

export function isTemplateText(text: string): boolean {
  return text.includes('{{') || text.includes('{%');
}

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/**
 * What a template sees of a value: secrets as their text (noting that one was read), maps and
 * lists as views that do the same for what is read inside them, lazily.
 */
class Views {
  readSecret = false;
  readonly originals = new WeakMap<object, unknown>();

  view(v: unknown): unknown {
    if (v instanceof Secret) {
      this.readSecret = true;
      return v.reveal();
    }
    if (Array.isArray(v) || isPlain(v)) {
      const proxy = new Proxy(v as object, {
        get: (target, key, receiver) => {
          const x = Reflect.get(target, key, receiver);
          return typeof key === 'string' && Object.prototype.hasOwnProperty.call(target, key) ? this.view(x) : x;
        },
      });
      this.originals.set(proxy, v);
      return proxy;
    }
    return v;
  }
}

/** Every string inside a value made secret: a value built from a secret is secret as a whole. */
function secretLeaves(v: unknown, name: string): unknown {
  if (typeof v === 'string') return new Secret(name, v);
  if (Array.isArray(v)) return v.map((x) => secretLeaves(x, name));
  if (isPlain(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, secretLeaves(x, name)]));
  return v;
}

function undefinedNames(names: string[]): TemplateFailure {
  const list = names.map((n) => `"${n}"`).join(', ');
  return new TemplateFailure(`its template reads ${list}, which ${names.length > 1 ? 'are' : 'is'} not defined`, names);
}

/**
 * Evaluate a template text for one host. `lookup` gives the host's vars (resolved) and the magic
 * vars; `secret` says the text itself is secret (from a vault file), so its result is too and no
 * error message may quote it. `name` names the Secret a secret result becomes.
 */
export function evaluateTemplate(text: string, lookup: Lookup, name: string, secret = false): unknown {
  const describe = (err: unknown) =>
    secret ? 'its template cannot be read (syntax error)' : `template error: ${(err as Error).message.replace(/\s+/g, ' ').replace(/^\(unknown path\)\s*/, '').replace(/^(Template render )?Error: /, '').trim()}`;
  const { template, names, native } = compile(text, describe);
  const views = new Views();
  const ctx: Record<string, unknown> = {};
  const missing: string[] = [];
  for (const n of names) {
    const r = lookup(n);
    if (r.found) ctx[n] = views.view(r.value);
    else missing.push(n);
  }
  const holder: { value?: unknown } = {};
  ctx[OUT] = holder;
  let rendered: string;
  try {
    rendered = template.render(ctx);
  } catch (err) {
    // A var the template read failed on its own (a cycle, a vault value): that error, as it is.
    let cause: unknown = err;
    while (cause instanceof Error && !(cause instanceof InventoryError) && (cause as { cause?: unknown }).cause) cause = (cause as { cause?: unknown }).cause;
    if (cause instanceof InventoryError) throw cause;
    if (missing.length) throw undefinedNames(missing);
    throw new TemplateFailure(describe(err));
  }
  let value: unknown = native ? holder.value : rendered;
  if (value === undefined) {
    throw missing.length ? undefinedNames(missing) : new TemplateFailure('its template gives an undefined value');
  }
  if (value && typeof value === 'object' && views.originals.has(value)) {
    // The expression is a var (or a part of one) as it is: the value itself, its Secrets intact.
    value = views.originals.get(value);
    return secret ? secretLeaves(value, name) : value;
  }
  if (views.readSecret || secret) return secretLeaves(value, name);
  return value;
}
