import { existsSync, readFileSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { sleep } from './exec.ts';
import type { ScaleState } from './scale.ts';

/** A process the lab started: its pid plus what it must look like, so a reused pid is never signalled. */
export interface ProcRecord {
  pid: number;
  /** Executable name expected as argv[0]'s basename. */
  exe: string;
  /** A string that must appear in its command line (a config path, a machine name). */
  marker: string;
}

export interface HostState {
  name: string;
  address: string;
  netns: string;
  veth: string;
  machine: string;
  /** Overlay mount point (the container's root). */
  root: string;
  nspawn?: ProcRecord;
}

export interface LabState {
  version: 1;
  name: string;
  subnet: string;
  gateway: string;
  bridge: string;
  /** iptables rule added so the machine's br_netfilter does not filter bridged lab traffic. */
  forwardRule?: string[];
  client?: { netns: string; veth: string; address: string };
  hosts: Record<string, HostState>;
  services: { tinyproxy?: ProcRecord; pebble?: ProcRecord; challtestsrv?: ProcRecord };
  pebble: boolean;
  startedAt?: string;
  /** Cheap scale hosts (sshd only, see scale.ts), when the instance has any. */
  scale?: ScaleState;
}

export function readState(file: string): LabState | undefined {
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as LabState;
}

/** Written after every step of up/down so a crash leaves an accurate record for `lab down`. */
export function writeState(file: string, state: LabState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
  renameSync(tmp, file);
}

function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** How a process is read from /proc (a parameter so tests can give the moments a real process shows rarely). */
export interface ProcReader {
  /** Its arguments; undefined when it is gone; empty for a moment while it execs another program. */
  cmdline(pid: number): string[] | undefined;
  isZombie(pid: number): boolean;
}
const procfs: ProcReader = { cmdline, isZombie };

/** True when the recorded process still runs and is still the one we started. */
export function isAlive(rec: ProcRecord | undefined, proc: ProcReader = procfs): boolean {
  if (!rec) return false;
  const argv = proc.cmdline(rec.pid);
  if (!argv || argv.length === 0 || proc.isZombie(rec.pid)) return false;
  return argv[0]!.split('/').pop() === rec.exe && argv.join(' ').includes(rec.marker);
}

/**
 * While it starts: the process still runs with our marker in its arguments, whatever program it is
 * yet. A launcher that execs the recorded program (`ip netns exec … unshare …`) is not that program
 * for a moment after spawn — longer on a loaded machine — and is not dead either; and while the
 * kernel replaces one program by the next, its /proc cmdline reads empty (a scale host's sshd was
 * taken for dead that way: "its sshd exited during start" while it was listening).
 */
export function isStarting(rec: ProcRecord, proc: ProcReader = procfs): boolean {
  const argv = proc.cmdline(rec.pid);
  if (argv === undefined || proc.isZombie(rec.pid)) return false;
  return argv.length === 0 || argv.join(' ').includes(rec.marker);
}

/** Children of a process (the container's init is the nspawn leader's child). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitGone(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!check()) return true;
    await sleep(100);
  }
  return !check();
}

/**
 * Stops one recorded process: SIGTERM, wait up to graceMs, then SIGKILL. `extraKill`
 * pids (a container's init) are SIGKILLed too on the hard path so nothing is orphaned.
 */
export async function stopProcess(rec: ProcRecord | undefined, graceMs: number, extraKill: () => number[] = () => []): Promise<void> {
  if (!rec || !isAlive(rec)) return;
  try {
    process.kill(rec.pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitGone(() => isAlive(rec), graceMs)) return;
  for (const pid of extraKill()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  try {
    process.kill(rec.pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(() => isAlive(rec), 5000);
}
