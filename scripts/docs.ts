// npm run docs [-- --check]
// Rewrites the generated blocks of docs/roles/<role>.md from each role's vars schema (src/roles/docs.ts);
// --check writes nothing and exits 1 when a doc is stale.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import '../src/roles/builtin.ts';
import { renderRoleDoc } from '../src/roles/docs.ts';
import { getRole, roleNames } from '../src/roles/index.ts';

const root = path.resolve(import.meta.dirname, '..');
const check = process.argv.includes('--check');
let stale = 0;
for (const name of roleNames()) {
  const role = getRole(name)!;
  const file = path.join(root, 'docs', 'roles', `${name}.md`);
  const before = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  const after = renderRoleDoc(role, before);
  if (after === before) continue;
  stale++;
  if (check) console.error(`stale: ${path.relative(root, file)} (run npm run docs)`);
  else {
    writeFileSync(file, after);
    console.log(`wrote ${path.relative(root, file)}`);
  }
}
process.exitCode = check && stale ? 1 : 0;
