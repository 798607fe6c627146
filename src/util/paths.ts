import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The package's root folder (where package.json is), found from this module's own location, so the
 * same code works from src/ (tsx) and from the dist/ bundle.
 */
function findRoot(): string {
  let dir = import.meta.dirname;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'src'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`provision: cannot find the package root above ${import.meta.dirname}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();
export const ROLES_DIR = path.join(PACKAGE_ROOT, 'src', 'roles');
export const INVENTORY_DIR = path.join(PACKAGE_ROOT, 'inventory');
