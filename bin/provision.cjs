#!/usr/bin/env node
// The CLI. Runs dist/provision.cjs (every dependency inside, compiled with V8's code cache: the fast
// start, see bin/bundle.cjs), or the TypeScript sources through tsx when the bundle is missing or,
// in a git checkout, older than a file in src/ (always correct). `npm ci` builds the bundle (prepare).
// An installed package has no .git and no edited sources: it never walks src/.
// CommonJS, not an ES module: Node starts a CommonJS main without its ES module loader (~5-10 ms less
// for every command, README "Speed"); the tsx fallback still imports ES modules, with import().
'use strict';
const { existsSync, readdirSync, readFileSync, statSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
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

async function main(args) {
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    // What commander prints for it, without compiling and evaluating the 3.3 MB bundle (ssh2, yaml,
    // zod, nunjucks…) nor walking src/: nothing of them is needed to say the version.
    process.stdout.write(`${JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version}\n`);
  } else if (bundleUpToDate()) {
    const loaded = require('./bundle.cjs').loadBundle(bundle);
    // runCli: a closed pipe or terminal never ends a run early, no error ends it with a stack trace.
    process.exitCode = await loaded.exports.runCli(args);
    // A command that went to hosts compiled the engine and SSH too: worth keeping in the cache.
    const local = args.some((a) => ['--version', '-V', '--help', '-h'].includes(a)) || ['lab', 'show', 'help'].includes(args[0] ?? '');
    loaded.saveCache(!local && process.exitCode !== 4);
  } else {
    // The sources are ES modules in TypeScript: tsx's loader hooks, then import() (which CommonJS has).
    const { register } = await import('tsx/esm/api');
    register();
    const { runCli } = await import('../src/cli/main.ts');
    process.exitCode = await runCli(args);
  }
}

// A failure here (a bundle that throws while it loads, tsx missing) ends the process with exit 1 and
// its stack, as an uncaught error of the ES module entry before did.
main(process.argv.slice(2)).catch((error) => {
  process.exitCode = 1;
  throw error;
});
