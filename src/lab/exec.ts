import { execFile, spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { LabError } from './errors.ts';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface RunOptions {
  /** Return the result instead of throwing when the command exits non-zero. */
  allowFail?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

/** Runs a command from an argument array (never through a shell). */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 0,
        env: opts.env ?? process.env,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        if (err && (err as { code?: unknown }).code === 'ENOENT') {
          reject(new LabError(`command not found: ${cmd}`));
          return;
        }
        const result = { stdout: String(stdout), stderr: String(stderr), code };
        if (err && !opts.allowFail) {
          const detail = lastLine(result.stderr) || lastLine(result.stdout) || err.message;
          reject(new LabError(`${cmd} ${args.slice(0, 4).join(' ')}${args.length > 4 ? ' …' : ''} failed: ${detail}`));
          return;
        }
        resolve(result);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.length ? lines[lines.length - 1]!.trim() : '';
}

/**
 * Starts a long-running process detached from us (own process group, stdin from
 * /dev/null, output appended to a log file) so it outlives this CLI invocation.
 */
export function spawnDetached(cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
    child.on('error', () => {}); // reported below through the missing pid
    if (child.pid === undefined) throw new LabError(`could not start ${cmd}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
