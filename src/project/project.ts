import path from 'node:path';
import { resolveInventoryPath } from '../inventory/index.js';

/**
 * The project: a folder holding inventory/, playbooks/, roles/ and modules/ — the current
 * directory, or --project DIR. Relative inventory and playbook paths given to a command are read
 * from it, not from wherever the command was started; a playbook's own relative paths (templates)
 * from the playbook's folder. Another part of the tool (provision.yml) reads `projectDir()` too.
 */
let current: string | undefined;

/** The project folder in use (absolute): set by --project, else the current directory. */
export function projectDir(): string {
  return current ?? process.cwd();
}

/** Use this folder as the project (undefined: the current directory again). */
export function useProject(dir: string | undefined): void {
  current = dir === undefined ? undefined : path.resolve(dir);
}

export const PROJECT_FOLDERS = { inventory: 'inventory', playbooks: 'playbooks', roles: 'roles', modules: 'modules' } as const;

/** A folder of the project: projectPath('roles', 'web') → <project>/roles/web. */
export function projectPath(folder: keyof typeof PROJECT_FOLDERS, ...rest: string[]): string {
  return path.join(projectDir(), PROJECT_FOLDERS[folder], ...rest);
}

/**
 * Options of a command, read from the project: `--inventory NAME` is inventory/NAME.yml of the
 * project, a relative --inventory or --playbook path is taken from the project folder. Rewritten in
 * place, before the command runs (commander's option values), so every command sees absolute paths.
 */
export function applyProjectOption(o: { project?: string; inventory?: string; playbook?: string }): void {
  useProject(o.project);
  if (o.project === undefined) return;
  const dir = projectDir();
  if (o.inventory !== undefined) o.inventory = resolveInventoryPath(o.inventory, dir);
  if (o.playbook !== undefined) o.playbook = path.resolve(dir, o.playbook);
}
