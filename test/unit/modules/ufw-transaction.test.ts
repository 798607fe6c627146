/**
 * The ufw transaction's scripts, run for real by dash on this machine against a scratch copy of
 * ufw's files, with a stand-in `ufw` that edits them (and can fail, or fire the rollback's timer
 * part-way through). Real flock, real processes, real races; no host needed. The lab test
 * (test/integration/ufw-transaction.test.ts) runs the same scripts with the real ufw and systemd.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { APPLY_EXIT, applyScript, CONFIRM_EXIT, confirmScript, rollbackNowScript, transactionDir, type TransactionPaths } from '../../../src/modules/ufw/transaction.js';
import { runBounded, type RunResult } from '../helpers/run.ts';

let root: string;
let paths: TransactionPaths;

/** Runs a script with dash (POSIX sh as on Debian hosts), bounded in time. */
const dash = (script: string, timeoutMs = 30_000): Promise<RunResult> => runBounded('/bin/dash', ['-c', script], { env: { PATH: paths.path, ROOT: root }, timeoutMs });

const etc = () => path.join(root, 'etc-ufw');
/** ufw's files as one text: what "byte for byte the same" compares. */
const ufwFiles = () => ['ufw.conf', 'user.rules'].map((f) => readFileSync(path.join(etc(), f), 'utf8')).join('--\n') + readFileSync(path.join(root, 'default-ufw'), 'utf8');
const record = () => readFileSync(path.join(transactionDir(paths), 'record'), 'utf8').trim();
const calls = () => (existsSync(path.join(root, 'calls')) ? readFileSync(path.join(root, 'calls'), 'utf8').trim().split('\n') : []);
/** A shell snippet the stand-in ufw runs after every call (N = its call count). */
const hook = (text: string) => writeFileSync(path.join(root, 'hook'), text);
const rollbackScriptFile = () => path.join(transactionDir(paths), 'rollback.sh');
const runRollback = (id: string, mode: 'timer' | 'now') => dash(mode === 'now' ? rollbackNowScript(id, paths) : `sh ${rollbackScriptFile()} ${id} timer`);

async function waitFor(check: () => boolean, what: string, boundMs = 10_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const STEPS = [
  ['ufw', 'allow', 'proto', 'tcp', 'from', '10.0.0.1', 'to', 'any', 'port', '22', 'comment', "admin's ssh"],
  ['ufw', 'allow', 'proto', 'tcp', 'from', 'any', 'to', 'any', 'port', '80'],
  ['ufw', 'allow', 'proto', 'tcp', 'from', 'any', 'to', 'any', 'port', '443'],
  ['ufw', 'default', 'deny', 'incoming'],
  ['ufw', '--force', 'enable'],
];

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ufw-txn-'));
  mkdirSync(etc());
  mkdirSync(path.join(root, 'bin'));
  writeFileSync(path.join(etc(), 'ufw.conf'), 'ENABLED=no\nLOGLEVEL=low\n');
  writeFileSync(path.join(etc(), 'user.rules'), '*filter\n### RULES ###\nCOMMIT\n');
  writeFileSync(path.join(root, 'default-ufw'), 'DEFAULT_INPUT_POLICY="DROP"\n');
  // The stand-in: records its argv, edits the files as ufw would (enough to tell states apart).
  const ufw = path.join(root, 'bin', 'ufw');
  writeFileSync(
    ufw,
    `#!/bin/sh
echo "$*" >> "$ROOT/calls"
N=$(wc -l < "$ROOT/calls")
case "$*" in
  *'--force enable') sed -i 's/^ENABLED=.*/ENABLED=yes/' "$ROOT/etc-ufw/ufw.conf" ;;
  *'--force disable'|disable) sed -i 's/^ENABLED=.*/ENABLED=no/' "$ROOT/etc-ufw/ufw.conf" ;;
  *FAIL*) echo "ERROR: Bad port" >&2; exit 1 ;;
  'default '*) echo "DEFAULT_INPUT_POLICY=$2" >> "$ROOT/default-ufw" ;;
  *) echo "### tuple ### $*" >> "$ROOT/etc-ufw/user.rules" ;;
esac
if [ -f "$ROOT/hook" ]; then . "$ROOT/hook"; fi
exit 0
`,
  );
  chmodSync(ufw, 0o755);
  paths = {
    stateDir: path.join(root, 'state'),
    etcUfw: etc(),
    defaultUfw: path.join(root, 'default-ufw'),
    systemdDir: path.join(root, 'no-systemd'), // the sleeper branch: never a real timer on this machine
    path: `${path.join(root, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin`,
    unit: 'provision-ufw-rollback-test',
  };
});

afterEach(async () => {
  // A sleeper a failed test left behind would fire into a deleted directory: stop it by its pid.
  const pidFile = path.join(transactionDir(paths), 'rollback.pid');
  if (existsSync(pidFile)) {
    try {
      process.kill(-Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  rmSync(root, { recursive: true, force: true });
});

describe('ufw transaction scripts (dash, real flock, a stand-in ufw)', () => {
  test('every script parses as POSIX sh', () => {
    for (const s of [applyScript({ id: 'a1', windowSeconds: 30, steps: STEPS }, paths), applyScript({ id: 'a1', windowSeconds: 0, steps: STEPS }, paths), confirmScript('a1', paths)]) {
      execFileSync('/bin/dash', ['-n', '-c', s]);
    }
  });

  test('applied, then confirmed: the rollback is disarmed, and one that fires anyway does nothing', async () => {
    const before = ufwFiles();
    const applied = await dash(applyScript({ id: 'a1', windowSeconds: 30, steps: STEPS }, paths));
    expect(applied).toMatchObject({ code: APPLY_EXIT.applied, stdout: 'applied 5 of 5\n' });
    expect(record()).toBe('a1 applied');
    expect(calls()).toEqual(STEPS.map((s) => s.slice(1).join(' ')));
    const after = ufwFiles();
    expect(after).not.toBe(before);
    const sleeper = Number(readFileSync(path.join(transactionDir(paths), 'rollback.pid'), 'utf8'));
    expect(() => process.kill(sleeper, 0)).not.toThrow();

    const confirmed = await dash(confirmScript('a1', paths));
    expect(confirmed).toMatchObject({ code: CONFIRM_EXIT.confirmed, stdout: 'confirmed\n' });
    expect(record()).toBe('a1 confirmed');
    // The armed rollback (here the sleeper) is gone…
    await waitFor(() => {
      try {
        process.kill(sleeper, 0);
        return false;
      } catch {
        return true;
      }
    }, 'the sleeper to end');
    // …and a rollback of this change that runs anyway finds it confirmed and leaves it alone.
    expect((await runRollback('a1', 'timer')).stdout).toBe('nothing to roll back: confirmed\n');
    expect(ufwFiles()).toBe(after);
  });

  test('the rollback fires part-way through the apply: nothing more is applied, the apply undoes itself, the confirmation says so', async () => {
    const before = ufwFiles();
    // After the 2nd ufw command, the timer "fires": the rollback starts and waits for the apply's lock.
    hook(`if [ "$N" = 2 ]; then nohup sh ${rollbackScriptFile()} a2 timer > "$ROOT/rollback.out" 2>&1 & fi
while [ "$N" = 2 ] && [ ! -s ${path.join(transactionDir(paths), 'due')} ]; do sleep 0.01; done
`);
    const applied = await dash(applyScript({ id: 'a2', windowSeconds: 30, steps: STEPS }, paths));
    expect(applied.code).toBe(APPLY_EXIT.windowRanOutUndone);
    expect(applied.stderr.trim()).toBe(
      'rolled back: the commit-confirm window (30s) ran out after 2 of 5 ufw commands, so the rest was not applied; the previous ufw files and state are restored',
    );
    // Never "enable" after the rollback began: the commands after the 2nd are the restore's only.
    expect(calls()).toEqual(['allow proto tcp from 10.0.0.1 to any port 22 comment admin\'s ssh', 'allow proto tcp from any to any port 80', '--force disable']);
    expect(ufwFiles()).toBe(before);
    expect(record()).toBe('a2 rolled-back');
    await waitFor(() => existsSync(path.join(root, 'rollback.out')) && readFileSync(path.join(root, 'rollback.out'), 'utf8').includes('\n'), 'the rollback to end');
    expect(readFileSync(path.join(root, 'rollback.out'), 'utf8')).toBe('nothing to roll back: rolled-back\n');
    const confirmed = await dash(confirmScript('a2', paths));
    expect(confirmed).toMatchObject({ code: CONFIRM_EXIT.alreadyRolledBack, stdout: 'rolled back\n' });
  });

  test('a ufw command that fails: the apply stops, restores the previous files and names the command and its output', async () => {
    const before = ufwFiles();
    const steps = [STEPS[0]!, ['ufw', 'allow', 'FAIL'], STEPS[4]!];
    const applied = await dash(applyScript({ id: 'a3', windowSeconds: 0, steps }, paths));
    expect(applied.code).toBe(APPLY_EXIT.failedUndone);
    expect(applied.stderr).toMatch(/^'ufw allow FAIL' exited 1 \(after 1 of 3 ufw commands\): .*ERROR: Bad port.*; the previous ufw files and state are restored\n$/);
    expect(calls().at(-1)).toBe('--force disable');
    expect(calls()).not.toContain('--force enable');
    expect(ufwFiles()).toBe(before);
    expect(record()).toBe('a3 rolled-back');
  });

  test('a rollback waits for whoever holds the lock, then restores', async () => {
    const before = ufwFiles();
    expect((await dash(applyScript({ id: 'a4', windowSeconds: 0, steps: STEPS }, paths))).code).toBe(0);
    const release = path.join(root, 'release');
    const holder = spawn('flock', [path.join(paths.stateDir, 'ufw.lock'), 'sh', '-c', `while [ ! -e ${release} ]; do sleep 0.02; done`], { stdio: 'ignore' });
    try {
      await waitFor(() => execFileSync('sh', ['-c', `flock -n ${path.join(paths.stateDir, 'ufw.lock')} true && echo free || echo held`]).toString().trim() === 'held', 'the lock to be held');
      const rolling = runRollback('a4', 'now');
      await waitFor(() => existsSync(path.join(transactionDir(paths), 'due')), 'the rollback to start');
      // It has begun (the mark is there) but cannot restore while the lock is held.
      await new Promise((r) => setTimeout(r, 300));
      expect(record()).toBe('a4 applied');
      writeFileSync(release, '');
      expect(await rolling).toMatchObject({ code: 0, stdout: 'rolled-back\n' });
    } finally {
      writeFileSync(release, '');
      holder.kill();
    }
    expect(record()).toBe('a4 rolled-back');
    expect(ufwFiles()).toBe(before);
  });

  test('a rollback that has started and a confirmation that races it: the report matches what happened (bounded, 4 rounds)', async () => {
    for (let round = 0; round < 4; round++) {
      rmSync(path.join(root, 'calls'), { force: true });
      writeFileSync(path.join(etc(), 'ufw.conf'), 'ENABLED=no\nLOGLEVEL=low\n');
      const before = ufwFiles();
      const id = `r${round}`;
      expect((await dash(applyScript({ id, windowSeconds: 0, steps: STEPS }, paths))).code).toBe(0);
      const applied = ufwFiles();
      const [rollback, confirmation] = await Promise.all([runRollback(id, round % 2 ? 'timer' : 'now'), dash(confirmScript(id, paths))]);
      if (confirmation.code === CONFIRM_EXIT.confirmed) {
        expect(rollback.stdout).toBe('nothing to roll back: confirmed\n');
        expect(record()).toBe(`${id} confirmed`);
        expect(ufwFiles()).toBe(applied);
      } else {
        expect(confirmation).toMatchObject({ code: CONFIRM_EXIT.alreadyRolledBack, stdout: 'rolled back\n' });
        expect(rollback.stdout).toBe('rolled-back\n');
        expect(record()).toBe(`${id} rolled-back`);
        expect(ufwFiles()).toBe(before);
      }
    }
  });

  test('an earlier change still waiting for its confirmation or rollback: a new apply refuses to start', async () => {
    expect((await dash(applyScript({ id: 'b1', windowSeconds: 30, steps: STEPS }, paths))).code).toBe(0);
    const first = ufwFiles();
    const second = await dash(applyScript({ id: 'b2', windowSeconds: 30, steps: [['ufw', 'allow', '8080']] }, paths));
    expect(second.code).toBe(APPLY_EXIT.busy);
    expect(second.stderr).toContain('refusing to start: an earlier ufw change (b1, applied) is not confirmed');
    expect(ufwFiles()).toBe(first);
    expect(record()).toBe('b1 applied');
    // Once it is settled, the next change goes ahead (and replaces the record).
    expect((await dash(confirmScript('b1', paths))).code).toBe(0);
    expect((await dash(applyScript({ id: 'b2', windowSeconds: 0, steps: [['ufw', 'allow', '8080']] }, paths))).code).toBe(0);
    expect(record()).toBe('b2 applied');
  });

  test('a confirmation for another transaction, or after the record is gone, is refused', async () => {
    expect((await dash(applyScript({ id: 'c1', windowSeconds: 0, steps: STEPS }, paths))).code).toBe(0);
    expect(await dash(confirmScript('zz', paths))).toMatchObject({ code: CONFIRM_EXIT.unexpected, stdout: "the transaction record is not this change's (found: c1 applied)\n" });
  });
});
