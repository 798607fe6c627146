#!/usr/bin/env node
// The CLI. Runs dist/provision.cjs (every dependency inside, compiled with V8's code cache: the fast
// start, see bin/bundle.mjs), or the TypeScript sources through tsx when the bundle is missing or,
// in a git checkout, older than a file in src/ (always correct). `npm ci` builds the bundle (prepare).
// An installed package has no .git and no edited sources: it never walks src/.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const bundle = path.join(root, 'dist/provision.cjs');

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return newest;
}

function bundleUpToDate() {
  if (process.env.PROVISION_NO_BUNDLE === '1' || !existsSync(bundle)) return false;
  if (!existsSync(path.join(root, '.git'))) return true;
  return statSync(bundle).mtimeMs >= newestSource(path.join(root, 'src'));
}

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // What commander prints for it, without compiling and evaluating the 2.8 MB bundle (ssh2, yaml,
  // zod, nunjucks…) nor walking src/: nothing of them is needed to say the version.
  process.stdout.write(`${JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version}\n`);
} else if (bundleUpToDate()) {
  const { loadBundle } = await import('./bundle.mjs');
  const loaded = loadBundle(bundle);
  // runCli: a closed pipe or terminal never ends a run early, no error ends it with a stack trace.
  process.exitCode = await loaded.exports.runCli(args);
  // A command that went to hosts compiled the engine and SSH too: worth keeping in the cache.
  const local = args.some((a) => ['--version', '-V', '--help', '-h'].includes(a)) || ['lab', 'show', 'help'].includes(args[0] ?? '');
  loaded.saveCache(!local && process.exitCode !== 4);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { runCli } = await import('../src/cli/main.ts');
  process.exitCode = await runCli(args);
}
