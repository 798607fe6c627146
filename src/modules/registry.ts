import { builtinModules } from './builtin.js';
import type { ModuleDef, Task } from './contract.js';
import { NamedRegistry, type NameLookup } from '../util/named-registry.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyModule = ModuleDef<any>;

/** Modules by name: built in (src/modules/builtin.ts, generated at build time), registered by code, or a project's (src/project). */
const modules = new NamedRegistry<AnyModule>();

/**
 * Where modules that are not built in come from: the project's modules/ folder (src/project),
 * asked only for a name a task uses. `undefined` when the project has no such module. Throws (bad
 * input, naming the file) for one that cannot be loaded or that shadows a built-in without `overrides: true`.
 */
export type ModuleLookup = NameLookup<AnyModule>;

export function setModuleLookup(fn: ModuleLookup | undefined): void {
  modules.setLookup(fn);
}

export function registerModule<P>(def: ModuleDef<P>): void {
  modules.register(def);
}

export function getModule(name: string): ModuleDef<unknown> | undefined {
  return modules.get(name);
}

export function isBuiltinModule(name: string): boolean {
  return modules.isBuiltin(name);
}

/** The built-in modules and those registered or loaded so far. */
export function moduleNames(): string[] {
  return modules.names();
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

for (const def of builtinModules) modules.addBuiltin(def);
