import { existsSync } from 'node:fs';
import path from 'node:path';
import { setModuleLookup, type ModuleDef } from '../modules/index.js';
import { setRoleLookup, type RoleDef } from '../roles/index.js';
import { PlaybookError } from '../util/errors.js';
import { loadTypeScript } from './load-ts.js';
import { projectDir, projectPath } from './project.js';
import { loadYamlRole } from './yaml-role.js';

/**
 * A project's own roles and modules, found by name when a playbook names one (nothing is read for
 * a playbook of built-ins but one stat per role and module name it uses):
 *   roles/<name>/index.ts  exporting `role` (or default), made with defineRole
 *   roles/<name>/tasks/main.yml  (or meta/main.yml only): a role in Ansible's layout
 *   modules/<name>.ts  exporting `module` (or default), made with defineModule
 * A role or module named like a built-in replaces it only when it declares `overrides: true`.
 */

/** A name that can be a folder of the project: never a path out of it ("../x"). */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

function exported<T>(file: string, exports: Record<string, unknown>, key: string): T {
  const value = exports[key] ?? exports.default;
  if (!value || typeof value !== 'object') throw new PlaybookError(`${file}: exports no \`${key}\` (export const ${key} = define${key === 'role' ? 'Role' : 'Module'}({ … }))`);
  return value as T;
}

function refuseShadowing(kind: 'role' | 'module', name: string, file: string, overrides: boolean | undefined, builtin: unknown): void {
  if (builtin && overrides !== true) {
    throw new PlaybookError(
      `${file}: ${kind} "${name}" has the name of a built-in ${kind}`,
      `rename it, or declare \`overrides: true\`${kind === 'role' ? ' (in meta/main.yml for a YAML role)' : ''} to replace the built-in`,
    );
  }
}

function loadTsRole(file: string, name: string): RoleDef {
  const role = exported<RoleDef>(file, loadTypeScript(file), 'role');
  if (role.name !== name) throw new PlaybookError(`${file}: the role is named "${String(role.name)}", its folder "${name}": they must agree`);
  if (typeof role.tasks !== 'function' || typeof role.vars?.safeParse !== 'function') {
    throw new PlaybookError(`${file}: \`role\` is not a role: defineRole({ name, description, vars: z.object({…}), tasks(ctx) { … } })`);
  }
  return { ...role, dir: path.dirname(file) };
}

export function findProjectRole(name: string, builtin: RoleDef | undefined): RoleDef | undefined {
  if (!SAFE_NAME.test(name)) return undefined;
  const dir = projectPath('roles', name);
  const ts = path.join(dir, 'index.ts');
  if (existsSync(ts)) {
    const role = loadTsRole(ts, name);
    refuseShadowing('role', name, ts, role.overrides, builtin);
    return role;
  }
  const marker = ['tasks/main.yml', 'tasks/main.yaml', 'meta/main.yml', 'meta/main.yaml'].map((f) => path.join(dir, f)).find((f) => existsSync(f));
  if (!marker) return undefined;
  const role = loadYamlRole(dir, name);
  refuseShadowing('role', name, path.join(dir, 'meta', 'main.yml'), role.overrides, builtin);
  return role;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function findProjectModule(name: string, builtin: ModuleDef<any> | undefined): ModuleDef<any> | undefined {
  if (!SAFE_NAME.test(name)) return undefined;
  const file = projectPath('modules', `${name}.ts`);
  if (!existsSync(file)) return undefined;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const def = exported<ModuleDef<any>>(file, loadTypeScript(file), 'module');
  if (def.name !== name) throw new PlaybookError(`${file}: the module is named "${String(def.name)}", its file "${name}.ts": they must agree`);
  if (typeof def.plan !== 'function' || typeof def.probes !== 'function' || typeof def.schema?.safeParse !== 'function') {
    throw new PlaybookError(`${file}: \`module\` is not a module: defineModule({ name, schema, probes, plan })`);
  }
  refuseShadowing('module', name, file, def.overrides, builtin);
  return def;
}

/**
 * Looks names up in the project folder in use (projectDir(), which --project sets); a name not
 * there is remembered as such, per project folder, so a playbook's built-ins cost one stat each.
 */
function cached<T>(find: (name: string, builtin: T | undefined) => T | undefined) {
  const seen = new Map<string, T | undefined>();
  return (name: string, builtin: T | undefined): T | undefined => {
    const key = `${projectDir()}\0${name}`;
    if (seen.has(key)) return seen.get(key);
    const found = find(name, builtin);
    seen.set(key, found);
    return found;
  };
}

/** Projects' roles and modules become findable by name (importing src/project does this). */
export function enableProjectDiscovery(): void {
  setRoleLookup(cached(findProjectRole));
  setModuleLookup(cached(findProjectModule));
}
