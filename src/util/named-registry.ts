/**
 * Things found by name — modules, roles — from three places: built in (a table generated at build
 * time), registered by code (tests, embedders), and a project's, loaded only when a name is asked
 * for (src/project). What is registered or loaded wins over a built-in of the same name; the
 * project lookup decides itself whether a project file may shadow a built-in (`overrides: true`).
 */
export type NameLookup<T> = (name: string, builtin: T | undefined) => T | undefined;

export class NamedRegistry<T extends { name: string }> {
  private readonly builtins = new Map<string, T>();
  private readonly registered = new Map<string, T>();
  /** A project's, once loaded (forgotten when the lookup changes: another project). */
  private readonly loaded = new Map<string, T>();
  private lookup: NameLookup<T> | undefined;

  setLookup(fn: NameLookup<T> | undefined): void {
    this.lookup = fn;
    this.loaded.clear();
  }

  addBuiltin(item: T): void {
    this.builtins.set(item.name, item);
  }

  register(item: T): void {
    this.registered.set(item.name, item);
  }

  get(name: string): T | undefined {
    const known = this.registered.get(name) ?? this.loaded.get(name);
    if (known) return known;
    const builtin = this.builtins.get(name);
    const found = this.lookup?.(name, builtin);
    if (found) {
      this.loaded.set(name, found);
      return found;
    }
    return builtin;
  }

  isBuiltin(name: string): boolean {
    return this.builtins.has(name);
  }

  /** The built-in names and those registered or loaded so far. */
  names(): string[] {
    return [...new Set([...this.builtins.keys(), ...this.registered.keys(), ...this.loaded.keys()])].sort();
  }
}
