import { spawnSync } from 'node:child_process';
import type { Connection, ExecOptions, ExecResult } from '../../../src/transport/index.js';

/**
 * A Connection whose host is this machine: every command runs in the real /bin/sh, as a host's
 * sshd would run it (probe scripts, file reads…), without SSH. For tests of what the engine makes
 * of real command output (plans, reports) that need no remote host.
 */
export class LocalConnection implements Connection {
  readonly hostName = 'local';
  roundTrips = 0;
  readonly probeTimeoutMs = 60_000;
  /** Every command line it was asked to run, as a host's process list would show it. */
  readonly commands: string[] = [];

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.roundTrips++;
    this.commands.push(command);
    const r = spawnSync('/bin/sh', ['-c', command], { input: opts.stdin, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C.UTF-8' } });
    return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? 1 };
  }

  forward(): never {
    throw new Error('LocalConnection cannot forward');
  }

  close(): void {}
}
