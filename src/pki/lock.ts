import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PkiError } from './errors.js';
import { LOCK_FILE } from './layout.js';

/*
 * One run at a time may create the CA or move a rotation on. The lock is a file made with O_EXCL
 * (`wx`) holding who took it; it is removed when the work ends, whatever way it ends. A lock left by
 * a process of this machine that no longer exists (killed) is taken over; one of another machine
 * (a CA folder on a shared disk) is waited for, then named in the error.
 *
 * The lock is one of two guards: the CA's creation and every change of state.json are also
 * published atomically (store.ts: link without overwrite, compare before rename), so even two runs
 * that both believed they held the lock could not leave two CAs.
 */

export const DEFAULT_LOCK_TIMEOUT_MS = 120_000;
const POLL_MS = 50;

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    return typeof owner.pid === 'number' && typeof owner.host === 'string' ? { pid: owner.pid, host: owner.host, since: String(owner.since) } : undefined;
  } catch {
    return undefined; // gone meanwhile, or being written: look again on the next poll
  }
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

function tryCreate(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() } satisfies LockOwner));
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Run `fn` holding the CA folder's lock; wait at most `timeoutMs` for another holder to finish. */
export async function withCaLock<T>(pkiDir: string, fn: () => Promise<T>, timeoutMs = DEFAULT_LOCK_TIMEOUT_MS): Promise<T> {
  const file = path.join(pkiDir, LOCK_FILE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (tryCreate(file)) break;
    const owner = readOwner(file);
    if (owner && owner.host === hostname() && owner.pid !== process.pid && processIsGone(owner.pid)) {
      // Its holder was killed: nothing it did is half-published (see above), so the lock is free.
      try {
        unlinkSync(file);
      } catch {
        /* another waiter took it over first */
      }
      continue;
    }
    if (Date.now() >= deadline) {
      const who = owner ? `process ${owner.pid} on ${owner.host} since ${owner.since}` : 'another process';
      throw new PkiError(`the CA folder ${pkiDir} is locked by ${who}`, `if no provision run is using it, remove ${file}`);
    }
    await sleep(POLL_MS);
  }
  try {
    return await fn();
  } finally {
    unlinkSync(file);
  }
}
