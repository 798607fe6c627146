/**
 * The executor: runs a playbook on an inventory and returns what happened as data (RunResult). It
 * owns its event contract (events.ts); exit codes, printing and plans are the CLI's and plan/'s.
 */
export { connectHosts, DEFAULT_FORKS, runPlaybook, validateRoleVars } from './run.js';
export { playTargets, unknownPlayHosts } from './targets.js';
export type { Connected, Gate, Phases, RunOptions, RunResult } from './run.js';
export { runHost } from './host-run.js';
export type { ChangeGuard, GuardedChange, HostOutcome, HostRunOptions, RunFlags, StateRead, TaskOutcome } from './host-run.js';
export { emptyCounts, maskedSink, NO_EVENTS } from './events.js';
export type { EventSink, HostCounts, Reporter, RunEvent, TaskStatus } from './events.js';
export { bindTask } from './bind.js';
export type { BoundTask, HostTask, TaskMeta, UnboundTask } from './bind.js';
export { expandPlay, roleVars } from './expand.js';
export type { HostPlay, PlayExpansion } from './expand.js';
export { loadPlaybook } from './playbook.js';
export type { Play, Playbook } from './playbook.js';
export { ConnectionPool } from './connect.js';
export { sessionOf, SshConnector } from './session.js';
export type { Connector, HostSession } from './session.js';
