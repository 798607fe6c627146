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

let cli;
if (process.env.PROVISION_NO_BUNDLE !== '1' && existsSync(bundle) && statSync(bundle).mtimeMs >= newestSource(path.join(root, 'src'))) {
  cli = await import(bundle);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli/main.ts');
}
// runCli: a closed pipe or terminal never ends a run early, no error ends it with a stack trace.
process.exitCode = await cli.runCli(process.argv.slice(2));
