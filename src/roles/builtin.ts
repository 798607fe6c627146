import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { registerRole } from './index.js';
import type { RoleDef } from './types.js';

/**
 * Registers every built-in role: each folder under src/roles/ with an index.ts that exports
 * `role: RoleDef`. Adding a role is adding a folder; nothing else needs editing.
 */
const dir = import.meta.dirname;
for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
  const file = path.join(dir, entry.name, 'index.ts');
  if (!entry.isDirectory() || !existsSync(file)) continue;
  const mod = (await import(file)) as { role?: RoleDef };
  if (!mod.role) throw new Error(`${file} does not export "role"`);
  registerRole(mod.role);
}
