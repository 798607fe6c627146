/**
 * The plan writer: a plan names hosts, paths and changes, and carries keyed fingerprints of secret
 * files' state; it is written 0600 (docs/security.md), whatever the umask and whatever file it
 * replaces.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { forgetPlanKeys, planFromRun, readPlan, writePlan, type PlanFile } from '../../../src/plan/plan.js';
import { clearRegisteredSecrets, registerSecret } from '../../../src/util/secrets.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-planfile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const plan = () => planFromRun({ hosts: {} }, { inventory: 'inv.yml', playbook: 'site.yml' });
const modeOf = (file: string) => statSync(file).mode & 0o777;

describe('writePlan', () => {
  let umask: number;
  beforeEach(() => {
    forgetPlanKeys();
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', path.join(tmp, 'keys/plan.key'));
    umask = process.umask(0o022);
  });
  afterEach(() => {
    process.umask(umask);
    vi.unstubAllEnvs();
  });

  it('a new plan file is 0600 under the usual umask (022), and reads back', () => {
    const file = path.join(tmp, 'new-plan.json');
    writePlan(file, plan());
    expect(modeOf(file)).toBe(0o600);
    expect(readPlan(file).inventory).toBe('inv.yml');
  });

  it('a plan written over an older world-readable file is 0600 too (the old mode is not kept)', () => {
    const file = path.join(tmp, 'old-plan.json');
    writeFileSync(file, '{}', { mode: 0o644 });
    expect(modeOf(file)).toBe(0o644);
    writePlan(file, plan());
    expect(modeOf(file)).toBe(0o600);
    expect(readPlan(file).playbook).toBe('site.yml');
  });

  it('the writer masks a registered secret in a plan however it was built (not only through planFromRun)', () => {
    const secret = 'plan-writer-Secret-0xC0FFEE';
    registerSecret(secret);
    try {
      const file = path.join(tmp, 'secret-plan.json');
      const built: PlanFile = {
        ...plan(),
        hosts: {
          'web-01': {
            tasks: [{ task: 'write', module: 'copy', handler: false, changes: [{ kind: 'file', target: '/etc/app.cnf', action: 'create', before: '', after: `password=${secret}\n` }] }],
            fingerprints: {},
          },
        },
      };
      writePlan(file, built);
      const text = readFileSync(file, 'utf8');
      expect(text).toContain('/etc/app.cnf');
      expect(text).not.toContain(secret);
    } finally {
      clearRegisteredSecrets();
    }
  });
});
