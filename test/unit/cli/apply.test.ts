/**
 * `provision apply` over recorded hosts: a saved plan is applied exactly, on one connection per
 * host; a host that drifted since the plan is refused (exit 5) and the others applied, or, with
 * --all-or-nothing, none; a plan older than --max-age is refused before any host is contacted.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyCommand, decideApply } from '../../../src/cli/apply.js';
import { loadPlaybook, runPlaybook, type HostOutcome } from '../../../src/executor/index.js';
import type { ProbeResult } from '../../../src/facts/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { forgetPlanKeys, planFromRun, writePlan, type PlanFile } from '../../../src/plan/plan.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { PlanRefused } from '../../../src/util/errors.js';
import { RecordedConnector, RecordedSession } from '../executor/recorded-connection.js';
import { captureOutput } from '../helpers/output.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-apply-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const inventoryFile = path.join(tmp, 'inv.yml');
writeFileSync(inventoryFile, 'hosts:\n  web-01: { address: 127.0.0.1, port: 1 }\n  web-02: { address: 127.0.0.1, port: 1 }\n');
const playbookFile = path.join(tmp, 'play.yml');
writeFileSync(
  playbookFile,
  `- name: p
  hosts: all
  tasks:
    - { name: stamp, command: { cmd: make-stamp, creates: /srv/stamp } }
`,
);

const missing: ProbeResult = { stdout: '', code: 1 };
const present: ProbeResult = { stdout: '', code: 0 };
/** Hosts whose stamp is missing (the plan's view), or per host otherwise. */
const hosts = (stamp: Record<string, ProbeResult> = {}) => new RecordedConnector((h) => new RecordedSession({ answers: { 'exists:/srv/stamp': stamp[h.name] ?? missing } }));

const { stderr, stdout } = captureOutput();
beforeEach(() => {
  forgetPlanKeys();
  vi.stubEnv('PROVISION_PLAN_KEY_FILE', path.join(tmp, 'plan.key'));
});
afterEach(() => vi.unstubAllEnvs());

/** A plan made by a check run of the recorded hosts, saved to a file. */
async function savedPlan(connector = hosts(), edit: (p: PlanFile) => PlanFile = (p) => p): Promise<string> {
  const inventory = loadInventory(inventoryFile);
  const playbook = loadPlaybook(playbookFile);
  const res = await runPlaybook({ inventory, playbook, check: true, reporter: new MemoryReporter(), connector });
  const file = path.join(tmp, `plan-${Math.random().toString(36).slice(2, 8)}.json`);
  writePlan(file, edit(planFromRun(res, { inventory: inventory.file, playbook: playbook.file })));
  return file;
}

const apply = (file: string, connector: RecordedConnector, allOrNothing = false) =>
  applyCommand(file, { maxAge: 3600, allOrNothing, reporter: new MemoryReporter(), connector });

describe('provision apply', () => {
  it('exactly the plan: every host converged, one connection per host, exit 2', async () => {
    const connector = hosts();
    expect(await apply(await savedPlan(), connector)).toBe(2);
    expect(connector.opened.sort()).toEqual(['web-01', 'web-02']);
    for (const h of ['web-01', 'web-02']) expect(connector.sessions.get(h)!.ran).toEqual(['make-stamp']);
  });

  it('a host that drifted since the plan is refused with what differs; the other is applied; exit 5', async () => {
    const connector = hosts({ 'web-02': present });
    expect(await apply(await savedPlan(), connector)).toBe(5);
    expect(connector.sessions.get('web-01')!.ran).toEqual(['make-stamp']);
    expect(connector.sessions.get('web-02')!.ran).toEqual([]);
    expect(stderr.join('')).toContain('provision: web-02: refused, the host drifted since the plan:\n  - changed since the plan: exists:/srv/stamp');
  });

  it('--all-or-nothing: one drifted host and nothing is applied anywhere; exit 5', async () => {
    const connector = hosts({ 'web-02': present });
    expect(await apply(await savedPlan(), connector, true)).toBe(5);
    expect(connector.sessions.get('web-01')!.ran).toEqual([]);
    expect(connector.sessions.get('web-02')!.ran).toEqual([]);
    expect(stderr.join('')).toContain('provision: --all-or-nothing: nothing applied');
  });

  it('--max-age: an older plan is refused before any host is contacted', async () => {
    const file = await savedPlan(hosts(), (p) => ({ ...p, created: new Date(Date.now() - 7200_000).toISOString() }));
    const connector = hosts();
    await expect(apply(file, connector)).rejects.toThrow(PlanRefused);
    await expect(apply(file, connector)).rejects.toThrow(/older than --max-age 3600 s/);
    expect(connector.opened).toEqual([]);
  });

  it('hosts already as the plan wants them: nothing to apply, exit 0', async () => {
    const converged = () => hosts({ 'web-01': present, 'web-02': present });
    const connector = converged();
    expect(await apply(await savedPlan(converged()), connector)).toBe(0);
    expect(stdout.join('')).toContain('nothing to apply: every host already matches');
    expect([...connector.sessions.values()].flatMap((s) => s.ran)).toEqual([]);
  });
});

describe('decideApply', () => {
  it('a host gone from the selection and a host new to it are refused, by name', async () => {
    const plan = JSON.parse(readFileSync(await savedPlan(), 'utf8')) as PlanFile;
    const newcomer: HostOutcome = { counts: { ok: 1, changed: 0, failed: 0, ignored: 0, refused: 0, skipped: 0, unreachable: 0 }, outcomes: [], observed: {}, failed: false };
    expect(decideApply(plan, { 'web-03': newcomer })).toEqual({
      refused: {
        'web-01': ['no longer selected by the inventory and limit'],
        'web-02': ['no longer selected by the inventory and limit'],
        'web-03': ['not in the plan'],
      },
      toApply: [],
    });
  });
});
