import { PlaybookError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';
import { evaluateTemplate, isTemplateText, TemplateFailure } from './template.js';

/*
 * Vars set over a host's vars — a play's `vars:` — worked out per host as Ansible works them out:
 * a template reads the host's vars, the other vars of the layer, `inventory_hostname`,
 * `group_names` and what is known at that point (facts, registered results); a string that is one
 * "{{ expression }}" keeps the expression's type; a var that reads a secret is a secret; a cycle
 * is an error naming it, as is a var nobody set. The same engine as the inventory's vars
 * (template.ts), so both kinds of vars read alike.
 */

/** A var of the layer reads a name that is known later (facts before connecting, a result not yet registered). */
class NotYetKnown extends Error {}

export interface LayerOptions {
  /** The host: its name, groups and (inventory) vars, under the layer. */
  host: { name: string; groups: readonly string[]; vars: Record<string, unknown> };
  /** The layer's vars as written (values may be templates, inside lists and maps too). */
  layer: Record<string, unknown>;
  /** "file:line:col" of a var of the layer, for errors. */
  at(name: string): string | undefined;
  /** Over the layer (Ansible's precedence: facts and registered results win over play vars). */
  known?: Record<string, unknown>;
  /** Names that are not defined yet but will be (a var reading one is left out until then). */
  pending?(name: string): boolean;
}

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/**
 * The layer's vars for one host, each worked out. A var that reads a pending name (directly or
 * through another var of the layer) is left out: the caller works the layer out again once it is
 * known. Throws PlaybookError naming the var, where it was set and the host.
 */
export function resolveLayer(opts: LayerOptions): Record<string, unknown> {
  const { host, layer } = opts;
  const known = opts.known ?? {};
  const values = new Map<string, unknown>();
  const waiting = new Set<string>();
  const resolving: string[] = [];
  const own = (name: string) => Object.prototype.hasOwnProperty.call(layer, name);

  const lookup = (name: string): { found: boolean; value?: unknown } => {
    if (Object.prototype.hasOwnProperty.call(known, name)) return { found: true, value: known[name] };
    if (own(name)) return { found: true, value: get(name) };
    if (name === 'inventory_hostname') return { found: true, value: host.name };
    if (name === 'group_names') return { found: true, value: host.groups.filter((g) => g !== 'all').sort() };
    if (name in host.vars) return { found: true, value: host.vars[name] };
    if (opts.pending?.(name)) throw new NotYetKnown(name);
    return { found: false };
  };

  const evaluate = (v: unknown, name: string): unknown => {
    if (v instanceof Secret) return v;
    if (typeof v === 'string') return isTemplateText(v) ? evaluateTemplate(v, lookup, name) : v;
    if (Array.isArray(v)) return v.map((x) => evaluate(x, name));
    if (isPlain(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, evaluate(x, name)]));
    return v;
  };

  function get(name: string): unknown {
    if (values.has(name)) return values.get(name);
    if (waiting.has(name)) throw new NotYetKnown(name);
    const at = opts.at(name) ?? '(play vars)';
    const loop = resolving.indexOf(name);
    if (loop >= 0) {
      const first = resolving[loop]!;
      throw new PlaybookError(`${opts.at(first) ?? at}: ${first}: vars form a cycle (${[...resolving.slice(loop), name].join(' → ')}) (host ${host.name})`);
    }
    resolving.push(name);
    try {
      const value = evaluate(layer[name], name);
      values.set(name, value);
      return value;
    } catch (err) {
      if (err instanceof NotYetKnown) waiting.add(name);
      if (err instanceof TemplateFailure) throw new PlaybookError(`${at}: ${name}: ${err.message} (host ${host.name})`);
      throw err;
    } finally {
      resolving.pop();
    }
  }

  const out: Record<string, unknown> = {};
  for (const name of Object.keys(layer)) {
    try {
      out[name] = get(name);
    } catch (err) {
      if (!(err instanceof NotYetKnown)) throw err;
    }
  }
  return out;
}
