// Loads dist/provision.cjs (the CLI with its dependencies, one CommonJS file made by
// scripts/build.mjs) through vm.Script with V8's code cache: what is in the cache is neither parsed
// nor compiled again. Node 20 has no compile cache for modules (module.enableCompileCache() came in
// 22), so the bundle is compiled here, as Node compiles a CommonJS module, with the cache given to V8.
// CommonJS itself, as bin/provision.cjs is: required, it costs no ES module loader at start-up.
//
// Two caches: provision.cjs.cache, made by the build after evaluating the bundle (every module's top
// level), and provision.cjs.run-cache, written once after the first run that reached hosts (it also
// holds what a run compiles: the engine, SSH, the renderers). The newer one that V8 takes is used.
//
//   node bin/bundle.cjs --make-cache dist/provision.cjs    (scripts/build.mjs)
//   node bin/bundle.cjs --check-cache dist/provision.cjs   exit 0 when V8 takes the cache
'use strict';
const { isAscii } = require('node:buffer');
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const path = require('node:path');
const vm = require('node:vm');

/** The source V8 compiles (and keys its cache by): the bundle inside Node's CommonJS wrapper. */
const wrap = (code) => `(function (exports, require, module, __filename, __dirname) {${code}\n})`;

/**
 * The bundle's text. The build makes it pure ASCII (scripts/ascii.mjs; it refuses a bundle that is
 * not), so its bytes are its characters: decoded as latin1, a plain copy into a one-byte string (the
 * 3.3 MB bundle with its 9 non-ASCII comment characters was a two-byte string, ~8 ms to read as UTF-8;
 * ASCII as latin1 ~0.5 ms, as UTF-8 ~3 ms). Checked here all the same rather than trusted (isAscii,
 * ~0.2 ms): a bundle not made by this build (edited by hand, an older build) is still read right, as
 * UTF-8. --make-cache and the CLI both read it here: V8's cache is made from the string it is used with.
 */
function source(file) {
  const bytes = readFileSync(file);
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

function compile(file, cachedData) {
  return new vm.Script(wrap(source(file)), { filename: file, cachedData });
}

function evaluate(script, file) {
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file));
  return module.exports;
}

function readOrNothing(file) {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Written beside and renamed: two runs finishing at once never leave half a cache. */
function writeCache(file, data) {
  try {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch {
    /* a read-only install: the build's cache serves */
  }
}

/**
 * The bundle's exports. Call `saveCache(reachedHosts)` after the command: it writes the run cache
 * once (after the first command that reached hosts), or again when V8 refused the one it had.
 */
function loadBundle(file) {
  const runCache = `${file}.run-cache`;
  const fromRun = readOrNothing(runCache);
  let script = compile(file, fromRun ?? readOrNothing(`${file}.cache`));
  const runCacheTaken = fromRun !== undefined && script.cachedDataRejected === false;
  if (fromRun && !runCacheTaken) script = compile(file, readOrNothing(`${file}.cache`)); // a stale run cache: the build's
  const exports = evaluate(script, file);
  return {
    exports,
    saveCache(reachedHosts) {
      if ((reachedHosts && !runCacheTaken) || script.cachedDataRejected !== false) writeCache(runCache, script.createCachedData());
    },
  };
}
exports.loadBundle = loadBundle;

async function cli(command, file) {
  if (command === '--make-cache') {
    // The bundle is evaluated (every module's top level runs, the CLI's main does not), then cached:
    // the cache holds every function that evaluation compiled, not only the top-level code. (An eager
    // compile with --no-lazy would hold all of them, but changes the flags V8 keys its caches by.)
    const script = compile(file);
    // The modules a command imports when it runs (src/cli/main.ts) are evaluated too: in the cache
    // as before they were lazy, while --help and the local commands still evaluate none of them.
    await evaluate(script, file).loadCommandModules?.();
    writeFileSync(`${file}.cache`, script.createCachedData());
  } else if (command === '--check-cache') {
    process.exitCode = compile(file, readFileSync(`${file}.cache`)).cachedDataRejected ? 1 : 0;
  }
}

if (require.main === module && process.argv[3]) {
  cli(process.argv[2], path.resolve(process.argv[3])).catch((error) => {
    process.exitCode = 1;
    console.error(error);
  });
}
