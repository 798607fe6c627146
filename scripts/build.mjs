#!/usr/bin/env node
// Bundles the CLI and every npm dependency it uses into one CommonJS file, dist/provision.cjs, and
// V8's code cache for it, dist/provision.cjs.cache. bin/provision.cjs compiles the bundle with that
// cache: no module resolution across hundreds of files in node_modules, no parsing of what the cache
// holds. (Node 20 has no module.enableCompileCache(), and ES modules take no code cache; CommonJS
// through vm.Script does.) bin/provision.cjs uses the bundle only while it is newer than every file
// in src/ (in a git checkout), and runs the TypeScript sources through tsx otherwise.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { isAscii } from 'node:buffer';
import { existsSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { toAscii } from './ascii.mjs';
import { TABLES } from './gen-builtins.mjs';

const root = path.resolve(import.meta.dirname, '..');
// node scripts/build.mjs [DIR]: into DIR instead of dist/ (the unit test of the bundle builds one aside).
const dist = path.resolve(process.argv[2] ?? path.join(root, 'dist'));
// What earlier builds left (an ES module bundle with chunks; a run cache of the previous bundle).
for (const old of ['chunks', 'provision.mjs', 'provision.mjs.map', 'provision.cjs.run-cache']) rmSync(path.join(dist, old), { recursive: true, force: true });

const bundle = path.join(dist, 'provision.cjs');

// The tables of built-in roles and modules (scripts/gen-builtins.mjs), current before bundling.
for (const t of TABLES) {
  const want = t.text();
  if (!existsSync(t.file) || readFileSync(t.file, 'utf8') !== want) writeFileSync(t.file, want);
}

// A native addon a package requires by a relative path (ssh2: "./crypto/build/Release/sshcrypto.node",
// its AES-GCM and ChaCha20-Poly1305 in C) would be looked for beside dist/provision.cjs, not found, and
// ssh2 would fall back to its JavaScript ciphers: every host phase of a run slower (connect, facts and
// state read each +60-100 ms on 3 lab hosts). Kept external under its package path, which Node
// resolves from dist/ through node_modules as the sources do.
const nativeFromPackage = {
  name: 'native-from-package',
  setup(b) {
    b.onResolve({ filter: /\.node$/ }, (args) => {
      const file = path.resolve(args.resolveDir, args.path);
      // esbuild gives real paths: a node_modules that is a symlink (a git worktree sharing another's)
      // is compared by its real path, or no addon is found in it and all stay relative.
      const rel = path.relative(realpathSync(path.join(root, 'node_modules')), file);
      if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
      return { path: rel.split(path.sep).join('/'), external: true };
    });
  },
};
/**
 * The bundle made pure ASCII (scripts/ascii.mjs: bin/bundle.cjs reads it as latin1, the fastest read),
 * or refused and removed: one with a character that cannot be escaped in place, or any byte above
 * 0x7f left, is not left behind for bin/provision.cjs to take.
 */
async function asciiOnly(file, made) {
  const refuse = (error) => {
    for (const m of made) rmSync(path.join(dist, m), { force: true });
    throw error;
  };
  let text;
  try {
    text = await toAscii(readFileSync(file, 'utf8'), file);
  } catch (error) {
    refuse(error);
  }
  // Checked before it is written: the bytes written are the text's, one for one.
  const bytes = Buffer.from(text, 'utf8');
  if (!isAscii(bytes)) refuse(new Error(`build: ${file} keeps bytes above 0x7f`));
  try {
    writeFileSync(file, bytes);
  } catch (error) {
    refuse(error); // a half-written bundle is not left behind either
  }
  return text;
}

/** What the CLI bundle and the public API's file share: one CommonJS file with its dependencies. */
const commonJsBundle = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // ssh2's optional native parts: loaded with require() inside try/catch, absent unless built.
  // tsx: required from node_modules only when a project has TypeScript roles or modules (src/project/load-ts.ts).
  external: ['*.node', 'cpu-features', 'tsx', 'tsx/*'],
  plugins: [nativeFromPackage],
  // The sources find the package root from their own folder (src/util/paths.ts).
  define: { 'import.meta.dirname': '__dirname' },
  logLevel: 'warning',
};
await build({ ...commonJsBundle, entryPoints: [path.join(root, 'src/cli/main.ts')], outfile: bundle, sourcemap: 'linked' });
const bundleText = await asciiOnly(bundle, ['provision.cjs', 'provision.cjs.map']);

// The bundle runs as a vm.Script (bin/bundle.cjs), where an import() that esbuild did not resolve
// (a built-in such as node:net, a path it could not see) throws "A dynamic import callback was not
// specified" — only when that code runs (e.g. `lab up`'s wait for its proxy). Refused here instead.
const leftImports = [...bundleText.matchAll(/(?<![\w$.])import\(\s*(["'`][^"'`]*["'`])/g)].map((m) => m[1]);
if (leftImports.length) {
  for (const made of ['provision.cjs', 'provision.cjs.map']) rmSync(path.join(dist, made), { force: true });
  throw new Error(`build: the bundle keeps dynamic import() of ${[...new Set(leftImports)].join(', ')}: import them statically (a vm.Script cannot run import())`);
}

// The code cache, made by this Node (V8 refuses a cache from another version; the CLI then compiles
// without it and writes a new one), after the bundle's modules were evaluated, and checked the way
// the CLI loads it.
const node = (command) => spawnSync(process.execPath, [path.join(root, 'bin/bundle.cjs'), command, bundle], { stdio: 'inherit' }).status;
if (node('--make-cache') !== 0 || node('--check-cache') !== 0) {
  // A bundle that cannot be evaluated is not left behind: bin/provision.cjs would take it (it is newer than src/).
  for (const made of ['provision.cjs', 'provision.cjs.cache', 'provision.cjs.map']) rmSync(path.join(dist, made), { force: true });
  throw new Error(`build: ${bundle} cannot be evaluated, or V8 refuses its code cache`);
}

// The public API (package.json "exports"): `import { defineModule, … } from 'provision'` in a
// project's own code and tests. One CommonJS file with its dependencies, and its types, emitted by tsc.
await build({ ...commonJsBundle, entryPoints: [path.join(root, 'src/api.ts')], outfile: path.join(dist, 'api.cjs') });
await asciiOnly(path.join(dist, 'api.cjs'), ['api.cjs']); // required by a project's code: the same read and scan
const types = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.api.json'), '--outDir', path.join(dist, 'types')], { stdio: 'inherit' });
if (types.status !== 0) throw new Error('build: tsc could not emit the API types (tsconfig.api.json)');
