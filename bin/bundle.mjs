// Loads dist/provision.cjs (the CLI with its dependencies, one CommonJS file made by
// scripts/build.mjs) through vm.Script with V8's code cache beside it, dist/provision.cjs.cache:
// what is in the cache is neither parsed nor compiled again. Node 20 has no compile cache for
// modules (module.enableCompileCache() came in 22), so the bundle is compiled here, as Node would
// compile a CommonJS module, with the cache given to V8.
//
//   node --no-lazy bin/bundle.mjs --make-cache dist/provision.cjs   (scripts/build.mjs)
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

/** The source V8 compiles (and keys its cache by): the bundle inside Node's CommonJS wrapper. */
const wrap = (code) => `(function (exports, require, module, __filename, __dirname) {${code}\n})`;

function compile(file, cachedData) {
  return new vm.Script(wrap(readFileSync(file, 'utf8')), { filename: file, cachedData });
}

/**
 * The bundle's exports. `saveCache()` writes a fresh cache when there was none or V8 refused it (a
 * Node upgrade since the build); call it after the run, so the cache also holds what the run compiled.
 */
export function loadBundle(file) {
  const cacheFile = `${file}.cache`;
  let cachedData;
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    /* none yet */
  }
  const script = compile(file, cachedData);
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file));
  const stale = !cachedData || script.cachedDataRejected;
  return {
    exports: module.exports,
    saveCache() {
      if (!stale) return;
      try {
        writeFileSync(cacheFile, script.createCachedData());
      } catch {
        /* a read-only install: the next run compiles without a cache again */
      }
    },
  };
}

if (process.argv[2] === '--make-cache') {
  // Run with --no-lazy: every function compiled now, so the cache holds all of them.
  const file = path.resolve(process.argv[3]);
  writeFileSync(`${file}.cache`, compile(file).createCachedData());
}
