#!/usr/bin/env node
// Bundles the CLI into dist/provision.mjs (npm dependencies stay external) so it starts in a
// fraction of the time tsx needs to transpile src/ on every run. bin/provision.mjs uses the
// bundle only while it is newer than every file in src/, and falls back to tsx otherwise.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
rmSync(path.join(root, 'dist/chunks'), { recursive: true, force: true });
await build({
  entryPoints: { provision: path.join(root, 'src/cli/main.ts') },
  outdir: path.join(root, 'dist'),
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  // What is imported with import() (the live TTY renderer and listr2, the lab) goes to chunks of
  // its own, loaded only when used: a run without a TTY never parses them.
  splitting: true,
});
