/**
 * Plan files carry fingerprints of the state they rely on, file contents included. Keyed with the
 * control machine's plan key, those of a secret file cannot be matched by hashing guesses offline.
 * The state is read for real (the file probe, in /bin/sh on this machine) through a HostRun.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HostRun, type RunResult } from '../../../src/executor/index.js';
import { assertPlanKey, forgetPlanKeys, planFromRun, planKey, writePlan, type PlanFile } from '../../../src/plan/plan.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { InputError } from '../../../src/util/errors.js';
import { LocalConnection } from '../executor/local-connection.js';
import { debianFacts, testHost } from '../modules/fixtures.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-plankey-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const WEAK = 'summer2024!';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A check run of one task on this machine that reads `file` (a copy of the same content: no change). */
async function readState(file: string, content: string): Promise<HostRun> {
  const run = new HostRun(testHost(), new LocalConnection(), debianFacts(), { check: true }, new MemoryReporter());
  await run.runTask({ name: 'secret file', module: 'copy', params: { dest: file, content, mode: '0600' } }, []);
  return run;
}

function planOf(run: HostRun): PlanFile {
  const res: RunResult = { exitCode: 0, hosts: new Map([['web-01', run]]), wallMs: 0 };
  return planFromRun(res, { inventory: 'inv.yml', playbook: 'site.yml' });
}

/** A file of this content, mode 0600, as the host has it. */
function secretFile(name: string, content: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, content);
  chmodSync(file, 0o600);
  return file;
}

describe('plan files and secret files', () => {
  beforeEach(() => {
    forgetPlanKeys();
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', path.join(tmp, 'keys/a/plan.key'));
  });
  afterEach(() => vi.unstubAllEnvs());

  it('a plan of a host with a secret file cannot be matched by hashing guesses of the secret', async () => {
    const content = `[client]\npassword=${WEAK}\n`;
    const run = await readState(secretFile('client.cnf', content), content);
    expect(run.counts.ok).toBe(1);
    const planFile = path.join(tmp, 'plan.json');
    writePlan(planFile, planOf(run));
    const text = readFileSync(planFile, 'utf8');
    expect(Object.keys(JSON.parse(text).hosts['web-01'].fingerprints).some((k) => k.includes('client.cnf'))).toBe(true);

    // The attacker's side: the same read of a file holding each guess gives the unkeyed fingerprint;
    // the right guess matches the real file's (so the attack is real) but nothing in the plan.
    const real = [...run.observed.values()];
    const guesses = ['password', WEAK, 'winter2023!'];
    for (const guess of guesses) {
      const c = `[client]\npassword=${guess}\n`;
      const attempt = await readState(secretFile(`guess-${guesses.indexOf(guess)}.cnf`, c), c);
      const fingerprints = [...attempt.observed.values()];
      expect(fingerprints.some((f) => real.includes(f))).toBe(guess === WEAK);
      for (const f of fingerprints) expect(text, `guess ${guess}`).not.toContain(f);
    }
    for (const s of [sha(WEAK), sha(content)]) {
      expect(text).not.toContain(s);
      expect(text).not.toContain(s.slice(0, 16));
    }
  });

  it('the same state under the same key gives the same fingerprints (apply can compare); another key, others', async () => {
    const content = 'token=0123456789abcdef\n';
    const file = secretFile('token', content);
    const a1 = planOf(await readState(file, content));
    const a2 = planOf(await readState(file, content));
    expect(a2.hosts['web-01']!.fingerprints).toEqual(a1.hosts['web-01']!.fingerprints);
    forgetPlanKeys();
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', path.join(tmp, 'keys/b/plan.key'));
    const b = planOf(await readState(file, content));
    for (const [k, v] of Object.entries(b.hosts['web-01']!.fingerprints)) expect(v, k).not.toBe(a1.hosts['web-01']!.fingerprints[k]);
  });

  it('the key is made on first use, mode 0600, and a plan made with another key is refused by apply', () => {
    const keyFile = path.join(tmp, 'keys/c/plan.key');
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', keyFile);
    const key = planKey();
    expect(key.length).toBe(32);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    forgetPlanKeys();
    expect(planKey().equals(key)).toBe(true); // read back, not made again

    const plan = planOf(new HostRun(testHost(), new LocalConnection(), debianFacts(), { check: true }, new MemoryReporter()));
    expect(() => assertPlanKey(plan, 'plan.json')).not.toThrow();
    forgetPlanKeys();
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', path.join(tmp, 'keys/d/plan.key'));
    expect(() => assertPlanKey(plan, 'plan.json')).toThrow(InputError);
    expect(() => assertPlanKey(plan, 'plan.json')).toThrow(`plan plan.json was made with another plan key than ${path.join(tmp, 'keys/d/plan.key')}: its state fingerprints cannot be checked here`);
  });

  it('a plan key readable by others is refused', () => {
    const keyFile = path.join(tmp, 'keys/e/plan.key');
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', keyFile);
    planKey();
    chmodSync(keyFile, 0o644);
    forgetPlanKeys();
    expect(() => planKey()).toThrow(`plan key ${keyFile} is readable by others (mode 0644, expected 0600)`);
  });
});
