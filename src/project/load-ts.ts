import Module, { createRequire } from 'node:module';
import path from 'node:path';
import * as zod from 'zod';
import * as api from '../api.js';
import { PlaybookError } from '../util/errors.js';
import { PACKAGE_ROOT } from '../util/paths.js';

/**
 * Loads a project's TypeScript file (a role's index.ts, a module's file) at run time, without a
 * build step by the user: tsx's require transpiles it (and what it imports) on the fly. Synchronous
 * (the playbook loader asks for a role or module by name and needs the answer then) and CommonJS:
 * the CLI's bundle runs as a vm.Script, where import() cannot run.
 *
 * In such a file, `import … from 'provision'` and `from 'zod'` are THIS process's: the same
 * Secret class, the same zod and its registry of marks (secret(), controlPath()) as the engine
 * checks them with — not a second copy from the project's node_modules, or none when it has none.
 */
const SHARED: Record<string, unknown> = { provision: api, zod };

let hooked = false;
function shareOurPackages(): void {
  if (hooked) return;
  hooked = true;
  const internals = Module as unknown as { _load(request: string, parent: { filename?: string } | undefined, isMain: boolean): unknown };
  const load = internals._load;
  internals._load = function (request, parent, isMain) {
    const shared = SHARED[request];
    // Only for the project's own files: a package in node_modules keeps its own dependencies.
    if (shared && parent?.filename && !parent.filename.split(path.sep).includes('node_modules')) return shared;
    return load.call(this, request, parent, isMain);
  };
}

type TsxRequire = (id: string, fromFile: string) => unknown;
let tsxRequire: TsxRequire | undefined;

/** tsx, required from the package's own node_modules (kept out of the bundle: loaded only when a project has TypeScript). */
function tsx(): TsxRequire {
  tsxRequire ??= (createRequire(path.join(PACKAGE_ROOT, 'package.json'))('tsx/cjs/api') as { require: TsxRequire }).require;
  return tsxRequire;
}

/** The exports of a project's .ts file. A file that does not compile or throws when run is bad input naming it. */
export function loadTypeScript(file: string): Record<string, unknown> {
  shareOurPackages();
  try {
    return tsx()(file, path.join(path.dirname(file), '__provision__.cjs')) as Record<string, unknown>;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // esbuild's "Transform failed with 1 error:\n/abs/file.ts:3:7: ERROR: Expected …": its located line.
    const located = /^(\/[^\n]*?:\d+:\d+: ERROR: [^\n]*)/m.exec(message)?.[1];
    throw new PlaybookError(located ? located.replace(': ERROR: ', ': ') : `${file}: cannot be loaded: ${message.split('\n')[0]}`);
  }
}
