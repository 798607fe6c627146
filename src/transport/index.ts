export { SshConnection } from './ssh.js';
export type { Connection, ExecOptions, ExecResult } from './ssh.js';
export { hostPattern } from './hostkeys/index.js';
