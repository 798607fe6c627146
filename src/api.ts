/**
 * provision's public API: `import { defineModule, defineRole, sh, … } from 'provision'`. The one
 * surface a project's own modules and roles use (modules/<name>.ts, roles/<name>/index.ts), typed
 * as the built-ins are. Stable across minor versions: what is exported here keeps its name and
 * meaning until the next major version; anything else in the package may change at any release.
 * README "Adding a module or a role" is its guide.
 */

// Modules: params (a zod schema; secrets and control-machine paths marked), probes, a pure plan.
export { controlPath, defineModule, NO_CHANGE, probe, secret, secretString, sharedProbe } from './modules/contract.js';
export type {
  CallTarget,
  Change,
  Command,
  ModuleContext,
  ModuleDef,
  Plan,
  PredictedState,
  Probe,
  ProbeResult,
  ProbeTarget,
  SharedRead,
  Task,
} from './modules/contract.js';
export { taskBuilder, type TaskOptions } from './modules/registry.js';
/** Typed task builders of the built-in modules, for TypeScript roles: apt('install nginx', { packages: ['nginx'] }). */
export { apt, command, copy, file, group, lineinfile, service, template, ufw, user } from './modules/tasks.js';
/** Probes of the built-ins that a module may reuse, and the safe write of a file's content. */
export { fileState, type FileState } from './modules/lib/file-state.js';
export { unitState, type UnitState } from './modules/service.js';
export { planFileContent } from './modules/copy.js';
export { writeFileCommand } from './modules/lib/write-file.js';

// Roles: vars as a zod schema, tasks and handlers built per host.
export { defineRole, problemIf, withRules, type VarRule } from './roles/define.js';
export type { BuiltinVars, HostRule, RoleContext, RoleDef, RoleTarget, RoleVarsSchema, VarIssue } from './roles/types.js';

// Shell command lines (remote shells may be dash: POSIX quoting only), and secrets.
export { quote, sh, shellJoin } from './util/quote.js';
export { Secret } from './util/secrets.js';

/** The zod the schemas are made with (a project's `import { z } from 'zod'` gets this same one when the CLI loads it). */
export { z } from 'zod';

/** Testing a module without a host: its plan for recorded probe output (a project's test/cases/<module>/*.json). */
export { planCase, type ModuleCase } from './project/cases.js';
