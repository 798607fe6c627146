export type { RemoteProcess } from './ssh.js';
export { SshConnection } from './ssh.js';
export type { Connection, ExecOptions, ExecResult } from './ssh.js';
export { hostPattern, knownKeysFor } from './known-hosts.js';
