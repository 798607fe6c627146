#!/usr/bin/env node
// Bundles the CLI into dist/provision.mjs (npm dependencies stay external) so it starts in a
// fraction of the time tsx needs to transpile src/ on every run. bin/provision.mjs uses the
// bundle only while it is newer than every file in src/, and falls back to tsx otherwise.
import { build } from 'esbuild';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
await build({
  entryPoints: [path.join(root, 'src/cli/main.ts')],
  outfile: path.join(root, 'dist/provision.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  // lab code is loaded on demand (`provision lab …`) and bundled too.
  splitting: false,
});
