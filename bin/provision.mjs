#!/usr/bin/env node
// The CLI. Runs the bundle in dist/ when it is up to date with src/ (fast start), else the
// TypeScript sources through tsx (always correct). `npm ci` builds the bundle (prepare).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const bundle = path.join(root, 'dist/provision.mjs');

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

let main;
if (process.env.PROVISION_NO_BUNDLE !== '1' && existsSync(bundle) && statSync(bundle).mtimeMs >= newestSource(path.join(root, 'src'))) {
  ({ main } = await import(bundle));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
