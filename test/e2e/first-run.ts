import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hosts, INSTANCE, INVENTORY, onHost, ROOT } from './lab-env.ts';

export const FIRST_RUN_FILE = `/tmp/provision-e2e/${INSTANCE}-first-run.json`;

/**
 * What the recorded first run was made on: the boot id of every lab host (systemd-nspawn gives each
 * container boot its own) and a hash of the code and inventory that ran. A record whose stamp does not
 * match the lab and code of now is an earlier run's (PROVISION_E2E_SKIP_CONVERGE=1 on a recreated lab,
 * or after editing src/): the tests that judge the first run must not pass on it.
 */
export interface RunStamp {
  bootIds: Record<string, string>;
  code: string;
}

export interface FirstRun {
  stamp: RunStamp;
  /** `provision plan --json` on the fresh hosts, just before the first run. */
  freshPlan: string;
  code: number;
  stderr: string;
  events: Array<Record<string, unknown>>;
  wallMs: number;
  /** The run right after it, before any test touched the site. */
  second?: { code: number; stderr: string; events: Array<Record<string, unknown>>; wallMs: number };
}

/** A hash of every file that decides what a run does: the source, the playbooks, this inventory. */
export function codeHash(): string {
  const listed = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z', 'src', 'playbooks'], { cwd: ROOT, encoding: 'utf8' }).split('\0');
  // The inventory by name: a generated one (the split topology's) is git-ignored, and still decides the run.
  const files = [...new Set([...listed, `inventory/${INVENTORY}.yml`])].filter(Boolean).sort();
  const h = createHash('sha256');
  for (const f of files) {
    const p = path.join(ROOT, f);
    h.update(`${f}\0`).update(existsSync(p) ? readFileSync(p) : '(deleted)').update('\0');
  }
  return h.digest('hex');
}

export async function currentStamp(): Promise<RunStamp> {
  const names = Object.keys(hosts()).sort();
  const ids = await Promise.all(
    names.map(async (h) => {
      const r = await onHost(h, 'cat /proc/sys/kernel/random/boot_id');
      if (r.code !== 0) throw new Error(`cannot read the boot id of ${h}: ${r.stderr}`);
      return [h, r.stdout.trim()] as const;
    }),
  );
  return { bootIds: Object.fromEntries(ids), code: codeHash() };
}

/** Why a recorded first run cannot be judged now, or undefined when it is this lab's and this code's. */
export function staleReason(recorded: RunStamp | undefined, now: RunStamp): string | undefined {
  if (!recorded) return `${FIRST_RUN_FILE} has no stamp (written by an older test suite)`;
  if (JSON.stringify(recorded.bootIds) !== JSON.stringify(now.bootIds)) {
    return `${FIRST_RUN_FILE} was recorded on another boot of lab "${INSTANCE}" (hosts' boot ids differ): converge again (unset PROVISION_E2E_SKIP_CONVERGE)`;
  }
  if (recorded.code !== now.code) {
    return `${FIRST_RUN_FILE} was recorded with other code (src/, playbooks/ or the inventory changed since): converge again (unset PROVISION_E2E_SKIP_CONVERGE)`;
  }
  return undefined;
}

/**
 * The first run recorded by the global setup, only when it was made on this lab boot with this
 * code; otherwise it throws, naming why, so that no test passes on an earlier run's files.
 */
export async function firstRun(): Promise<FirstRun> {
  if (!existsSync(FIRST_RUN_FILE)) throw new Error(`the global setup recorded no first converge (${FIRST_RUN_FILE}; PROVISION_E2E_SKIP_CONVERGE set on a lab never converged?)`);
  const r = JSON.parse(readFileSync(FIRST_RUN_FILE, 'utf8')) as FirstRun;
  const stale = staleReason(r.stamp, await currentStamp());
  if (stale) throw new Error(`stale first-run record: ${stale}`);
  return r;
}
