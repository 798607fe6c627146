import { builtinModules } from './builtin.js';
import type { ModuleDef, Task } from './contract.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyModule = ModuleDef<any>;

/** The built-in modules (src/modules/builtin.ts, a table generated at build time). */
const builtins = new Map<string, AnyModule>();
/** Modules registered by code (tests, embedders). */
const registered = new Map<string, AnyModule>();
/** A project's modules once loaded (forgotten when the lookup changes: another project). */
const loaded = new Map<string, AnyModule>();

/**
 * Where modules that are not built in come from: the project's modules/ folder (src/project),
 * asked only for a name a task uses. `undefined` when the project has no such module. Throws (bad
 * input, naming the file) for one that cannot be loaded or that shadows a built-in without `overrides: true`.
 */
export type ModuleLookup = (name: string, builtin: AnyModule | undefined) => AnyModule | undefined;
let lookup: ModuleLookup | undefined;

export function setModuleLookup(fn: ModuleLookup | undefined): void {
  lookup = fn;
  loaded.clear();
}

export function registerModule<P>(def: ModuleDef<P>): void {
  registered.set(def.name, def);
}

export function getModule(name: string): ModuleDef<unknown> | undefined {
  const known = registered.get(name) ?? loaded.get(name);
  if (known) return known;
  const builtin = builtins.get(name);
  const found = lookup?.(name, builtin);
  if (found) {
    loaded.set(name, found);
    return found;
  }
  return builtin;
}

export function isBuiltinModule(name: string): boolean {
  return builtins.has(name);
}

/** The built-in modules and those registered or loaded so far. */
export function moduleNames(): string[] {
  return [...new Set([...builtins.keys(), ...registered.keys(), ...loaded.keys()])].sort();
}

export interface TaskOptions {
  notify?: string | string[];
  tags?: string[];
  when?: boolean;
  ignoreErrors?: boolean;
}

/** A typed task builder for a module: `apt('install nginx', { packages: ['nginx'] }, { notify: 'reload nginx' })`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function taskBuilder<Input>(def: ModuleDef<any>) {
  return (name: string, params: Input, opts: TaskOptions = {}): Task => ({
    name,
    module: def.name,
    params,
    notify: opts.notify === undefined ? undefined : Array.isArray(opts.notify) ? opts.notify : [opts.notify],
    tags: opts.tags,
    when: opts.when,
    ignoreErrors: opts.ignoreErrors,
  });
}

for (const def of builtinModules) builtins.set(def.name, def);
