export { connectHosts, EXIT, exitCodeFor, runPlaybook, validateRoleVars } from './run.js';
export type { RunOptions, RunResult } from './run.js';
export { loadPlaybook } from './playbook.js';
export type { Play, Playbook } from './playbook.js';
export { HostRun } from './host-run.js';
export type { ChangeGuard, GuardedChange } from './host-run.js';
export { ConnectionPool } from './connect.js';
export { expandPlay } from './expand.js';
