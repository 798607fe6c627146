import type { Connection, ExecOptions, ExecResult } from '../../../src/transport/index.js';

/**
 * Recorded outputs instead of a host: `false` fails with a message, any other command succeeds
 * with no output. Every command is kept, so a test can say what ran and what never did.
 */
export class RecordedConnection implements Connection {
  readonly hostName = 'web-01';
  readonly roundTrips = 0;
  readonly probeTimeoutMs = 60_000;
  readonly ran: string[] = [];
  async exec(command: string, _opts?: ExecOptions): Promise<ExecResult> {
    this.ran.push(command);
    return command === 'false' ? { stdout: '', stderr: 'it went wrong', code: 1 } : { stdout: '', stderr: '', code: 0 };
  }
  forward(): never {
    throw new Error('no forwarding here');
  }
  close(): void {}
}
