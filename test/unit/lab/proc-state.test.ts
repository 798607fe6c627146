/**
 * Whether a recorded lab process still starts, runs, or has died, read from /proc. The moments a real
 * process shows only briefly (mid-exec, a zombie) are given by a reader of our own.
 */
import { describe, expect, it } from 'vitest';
import { isAlive, isStarting, type ProcReader, type ProcRecord } from '../../../src/lab/state.ts';

const rec: ProcRecord = { pid: 4242, exe: 'sshd', marker: 'provision-lab:scale-003' } as ProcRecord;
const reader = (argv: string[] | undefined, zombie = false): ProcReader => ({ cmdline: () => argv, isZombie: () => zombie });

describe('isStarting', () => {
  it('the launcher, with our marker: starting', () => {
    expect(isStarting(rec, reader(['ip', 'netns', 'exec', 'ns', 'unshare', '--', '/usr/sbin/sshd', '-D', '-o', 'provision-lab:scale-003']))).toBe(true);
  });
  it('between the launcher and sshd the kernel shows an empty cmdline: still starting, not dead', () => {
    expect(isStarting(rec, reader([]))).toBe(true);
  });
  it('gone, a zombie, or another program without our marker: not starting', () => {
    expect(isStarting(rec, reader(undefined))).toBe(false);
    expect(isStarting(rec, reader(['/usr/sbin/sshd', '-D'], true))).toBe(false);
    expect(isStarting(rec, reader(['/usr/bin/other']))).toBe(false);
  });
});

describe('isAlive', () => {
  it('the recorded program with our marker: alive; mid-exec or the launcher: not yet', () => {
    expect(isAlive(rec, reader(['/usr/sbin/sshd', '-D', '-o', 'provision-lab:scale-003']))).toBe(true);
    expect(isAlive(rec, reader([]))).toBe(false);
    expect(isAlive(rec, reader(['ip', 'netns', 'exec', 'provision-lab:scale-003']))).toBe(false);
  });
});
