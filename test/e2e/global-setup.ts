/**
 * Before the end-to-end tests: the lab is up and the whole site is converged once from fresh hosts
 * (tests that only read share it). The first run's result is kept for site.test.ts to judge.
 * PROVISION_E2E_SKIP_CONVERGE=1 skips the converge (a developer's loop on an already converged lab);
 * the record is stamped (first-run.ts) so that it is judged only on the same lab boot and code.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { labUp } from '../../src/lab/index.ts';
import { currentStamp, FIRST_RUN_FILE } from './first-run.ts';
import { INSTANCE, INVENTORY, provision, ROOT, TOPOLOGY } from './lab-env.ts';
import { SPLIT_HOSTS, writeSplitInventory } from './topology.ts';

export default async function setup(): Promise<void> {
  // PROVISION_E2E_SUBNET: the subnet of an instance that is not up yet and has no default one.
  // The split topology's database hosts are not reference hosts: asked for by name.
  await labUp({ name: INSTANCE, subnet: process.env.PROVISION_E2E_SUBNET || undefined, ...(TOPOLOGY === 'split' ? { only: SPLIT_HOSTS } : {}) });
  if (TOPOLOGY === 'split') writeSplitInventory(ROOT, INSTANCE, INVENTORY);
  if (process.env.PROVISION_E2E_SKIP_CONVERGE === '1') return;
  // An earlier run's record must not survive a failed converge of this one.
  rmSync(FIRST_RUN_FILE, { force: true });
  const stamp = await currentStamp();
  // The plan made on the fresh hosts, for plan.test.ts to compare with the real first run.
  const plan = await provision(['plan', '--json'], { timeoutMs: 20 * 60_000 });
  const t0 = Date.now();
  const r = await provision(['--json'], { timeoutMs: 40 * 60_000 });
  mkdirSync(path.dirname(FIRST_RUN_FILE), { recursive: true });
  // The second run right away, before any test breaks anything on purpose.
  const t1 = Date.now();
  const second = await provision(['--json'], { timeoutMs: 20 * 60_000 });
  writeFileSync(
    FIRST_RUN_FILE,
    JSON.stringify({
      stamp,
      freshPlan: plan.stdout,
      code: r.code,
      stderr: r.stderr,
      events: r.events,
      wallMs: t1 - t0,
      second: { code: second.code, stderr: second.stderr, events: second.events, wallMs: Date.now() - t1 },
    }),
  );
  const recap = r.events.find((e) => e.kind === 'recap');
  process.stdout.write(`e2e setup: first converge of lab "${INSTANCE}" (${TOPOLOGY}, inventory ${INVENTORY}) exited ${r.code} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
  if (!recap) process.stdout.write(`e2e setup: no recap; stderr: ${r.stderr.slice(0, 2000)}\n`);
}
