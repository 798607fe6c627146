export type { RemoteProcess } from './ssh.js';
export { SshConnection } from './ssh.js';
export type { Connection, ExecOptions, ExecResult } from './ssh.js';
export { hostPattern } from './hostkeys/index.js';
export { CommandTimeoutError, DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_PROBE_TIMEOUT_MS } from './remote-command.js';
