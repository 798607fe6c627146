/**
 * The public API as a project uses it: `import … from 'provision'` by package name, from a project
 * folder where provision is installed (linked, as npm link or a file: dependency installs it):
 * package.json "exports" lead to the built entry (dist/api.cjs) and its shipped types
 * (dist/types/api.d.ts, both made by npm run build, which npm ci runs as prepare).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');
let dir: string;

beforeAll(() => {
  for (const built of ['dist/api.cjs', 'dist/types/api.d.ts']) expect(existsSync(path.join(ROOT, built)), `${built} is missing: run npm run build`).toBe(true);
  dir = mkdtempSync(path.join(tmpdir(), 'provision-api-'));
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(ROOT, path.join(dir, 'node_modules', 'provision'), 'dir');
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'a-project', private: true, type: 'module', dependencies: { provision: `file:${ROOT}` } }));
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules/@types')] }, include: ['modules'] }),
  );
  mkdirSync(path.join(dir, 'modules'));
  copyFileSync(path.join(ROOT, 'src/project/scaffold/modules/example.ts'), path.join(dir, 'modules/example.ts'));
});

describe("import … from 'provision' in a project", () => {
  it('type-checks a module against the shipped types, and refuses one that breaks the contract', () => {
    // plan() must return a Plan: a string is not one; a probe's parse gets a ProbeResult, not a number.
    writeFileSync(
      path.join(dir, 'modules/wrong.ts'),
      `import { defineModule, probe, z } from 'provision';
export const module = defineModule({
  name: 'wrong',
  schema: z.object({ path: z.string() }),
  probes: (p) => [probe('k', 'true', (r) => r.stdout.length)],
  plan: (p) => 'write ' + p.path,
});
`,
    );
    const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' });
    const errors = tsc.stdout.split('\n').filter((l) => /error TS/.test(l));
    expect(errors.length, tsc.stdout).toBeGreaterThan(0);
    // Every error is in the module that breaks the contract; the example is clean.
    expect(errors.filter((l) => !l.startsWith('modules/wrong.ts')), tsc.stdout).toEqual([]);
    expect(errors.join('\n')).toMatch(/modules\/wrong\.ts\(6,/);
  }, 180_000);

  it('runs: the built entry exports the API by name', () => {
    const script = "import { defineModule, sh, z, Secret } from 'provision'; const m = defineModule({ name: 'x', schema: z.object({}), probes: () => [], plan: () => ({ changes: [], commands: [] }) }); console.log(typeof m.plan, sh`echo ${'a b'}`, typeof Secret);";
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe("function echo 'a b' function\n");
  });
});
