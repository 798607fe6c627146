// Preloaded with `node --require` by start-up.test.ts: records every module the CLI evaluates (and
// each use of ICU's collator), in a file named by $MODULE_PROBE_OUT (one per line, modules relative
// to the repository), whichever way
// bin/provision.cjs starts it:
//   - the bundle (dist/provision.cjs): esbuild wraps each module in a function keyed by its path
//     (`__esm({ "src/cli/run.ts"() {…} })`, `__commonJS({ "node_modules/ssh2/lib/index.js"(…) {…} })`)
//     and evaluates it on first use by taking that key with Object.getOwnPropertyNames, which the
//     bundle captures when it loads, after this file: so each such call with one path key is a module evaluated;
//   - the sources through tsx: ES modules, recorded by a resolve hook as they are resolved (a static
//     import is evaluated with its importer; a dynamic one only when it runs), and CommonJS ones by Module._load.
const { appendFileSync, realpathSync } = require('node:fs');
const Module = require('node:module');
const path = require('node:path');

const out = process.env.MODULE_PROBE_OUT;
const root = path.resolve(__dirname, '../../..');
const seen = new Set();
const record = (name) => {
  if (seen.has(name)) return;
  seen.add(name);
  appendFileSync(out, `${name}\n`);
};
// Node resolves to real paths: a node_modules that is a symlink (a git worktree sharing another's)
// is named by its place in the repository all the same.
const modulesReal = realpathSync(path.join(root, 'node_modules'));
const inRoot = (file) => (file.startsWith(modulesReal + path.sep) ? path.join(root, 'node_modules', file.slice(modulesReal.length + 1)) : file);
const relative = (file) => path.relative(root, inRoot(file)).split(path.sep).join('/');

// ICU's collator, started by the first localeCompare or Intl.Collator (tens of ms): each use is
// recorded as "collator: " and where it was called from.
const localeCompare = String.prototype.localeCompare;
String.prototype.localeCompare = function (...args) {
  record(`collator: localeCompare at ${new Error().stack.split('\n')[2].trim()}`);
  return localeCompare.apply(this, args);
};
const Collator = Intl.Collator;
Intl.Collator = function (...args) {
  record(`collator: Intl.Collator at ${new Error().stack.split('\n')[2].trim()}`);
  return new Collator(...args);
};

// Keys are paths relative to the folder the build ran in (the repository); with a symlinked
// node_modules esbuild names its files by their real paths ("../../main/node_modules/…").
const MODULE_KEY = /^((\.\.\/)+.*\/)?(src|node_modules)\/.*\.(ts|js|mjs|cjs|json)$/;
const getOwnPropertyNames = Object.getOwnPropertyNames;
Object.getOwnPropertyNames = function (o) {
  const names = getOwnPropertyNames(o);
  if (names.length === 1 && MODULE_KEY.test(names[0]) && typeof o[names[0]] === 'function') record(relative(path.resolve(root, names[0])));
  return names;
};

const load = Module._load;
Module._load = function (request, parent, isMain) {
  try {
    const file = Module._resolveFilename(request, parent, isMain);
    if (path.isAbsolute(file)) record(relative(file));
  } catch {
    /* a built-in or a request that fails: Node's own error below */
  }
  return load.apply(this, arguments);
};

Module.register(
  `data:text/javascript,${encodeURIComponent(`
    import { appendFileSync } from 'node:fs';
    import { fileURLToPath } from 'node:url';
    import path from 'node:path';
    const root = ${JSON.stringify(root)};
    const modulesReal = ${JSON.stringify(modulesReal)};
    const inRoot = ${inRoot.toString()};
    export async function resolve(specifier, context, next) {
      const r = await next(specifier, context);
      if (r.url.startsWith('file:')) appendFileSync(${JSON.stringify(out)}, path.relative(root, inRoot(fileURLToPath(r.url))).split(path.sep).join('/') + '\\n');
      return r;
    }`)}`,
);
