export { SshConnection } from './ssh.js';
export type { Connection, ExecOptions, ExecResult, RemoteProcess } from './ssh.js';
export { hostPattern, knownKeysFor } from './known-hosts.js';
