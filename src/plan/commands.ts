import path from 'node:path';
import { EXIT, loadPlaybook, runPlaybook, HostRun, type RunResult } from '../executor/index.js';
import { loadInventory } from '../inventory/index.js';
import { renderChange } from '../report/diff.js';
import { colors } from '../report/format.js';
import type { Reporter } from '../report/events.js';
import { MemoryReporter } from '../report/renderers.js';
import { InputError, ProvisionError } from '../util/errors.js';
import { PlanGuard } from './guard.js';
import { assertPlanKey, changeLines, hostDrift, planFromRun, readPlan, writePlan, type PlanFile } from './plan.js';

/** A plan that may not be applied: too old, or the hosts drifted (exit 5). */
export class PlanRefused extends ProvisionError {}

export interface PlanOptions {
  inventory: string;
  playbook: string;
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  forks?: number;
}

async function checkRun(o: PlanOptions, reporter: Reporter = new MemoryReporter()): Promise<{ res: RunResult; plan: PlanFile }> {
  const inventory = loadInventory(o.inventory);
  const playbook = loadPlaybook(path.resolve(o.playbook));
  const res = await runPlaybook({ inventory, playbook, limit: o.limit, tags: o.tags, skipTags: o.skipTags, forks: o.forks, check: true, reporter });
  const plan = planFromRun(res, { inventory: inventory.file, playbook: playbook.file, limit: o.limit, tags: o.tags, skipTags: o.skipTags });
  return { res, plan };
}

const out = (s: string) => process.stdout.write(s + '\n');

/** Render a plan: per host, every change, with diffs for file contents. */
export function renderPlan(plan: PlanFile, color = false): string[] {
  const c = colors(color);
  const lines = [c.bold(`plan of ${plan.playbook} on ${plan.inventory}, made ${plan.created} by ${plan.tool}`)];
  for (const [host, h] of Object.entries(plan.hosts)) {
    if (h.unreachable) lines.push(c.red(`${host}: UNREACHABLE when planned: ${h.unreachable}`));
    else if (h.failed) lines.push(c.red(`${host}: a task would fail: ${h.failed}`));
    else if (h.tasks.length === 0) lines.push(c.green(`${host}: no change`));
    else lines.push(c.yellow(`${host}: ${h.tasks.length} task(s) would change`));
    for (const t of h.tasks) {
      lines.push(`  ${t.handler ? 'handler ' : ''}${t.role ? t.role + ' : ' : ''}${t.task}`);
      for (const ch of t.changes) lines.push(...renderChange(ch).split('\n').map((l) => '    ' + l));
    }
  }
  return lines;
}

export async function planCommand(o: PlanOptions & { out?: string; json?: boolean }): Promise<number> {
  const { res, plan } = await checkRun(o);
  if (o.out) writePlan(o.out, plan);
  if (o.json) out(JSON.stringify(plan));
  else {
    for (const l of renderPlan(plan, Boolean(process.stdout.isTTY))) out(l);
    if (o.out) out(`plan written to ${o.out}; apply it with: provision apply ${o.out}`);
  }
  return res.exitCode;
}

export async function showCommand(file: string): Promise<number> {
  for (const l of renderPlan(readPlan(file), Boolean(process.stdout.isTTY))) out(l);
  return EXIT.OK;
}

export interface ApplyOptions {
  allOrNothing?: boolean;
  maxAge: number; // seconds
  forks?: number;
  reporter: Reporter;
}

/**
 * Apply exactly a saved plan. A check run first compares every host with the plan: a host whose
 * state or computed changes differ is refused with what differs (--all-or-nothing: every host),
 * the rest are converged by a real run that checks again itself (PlanGuard): the state it reads
 * before any task, and each task's changes before its commands run. What that run would do beyond
 * the plan is refused (exit 5), not warned about afterwards.
 */
export async function applyCommand(file: string, o: ApplyOptions): Promise<number> {
  const plan = readPlan(file);
  assertPlanKey(plan, file);
  const age = (Date.now() - Date.parse(plan.created)) / 1000;
  if (!(age <= o.maxAge)) {
    throw new PlanRefused(`plan ${file} is ${Math.round(age)} s old, older than --max-age ${o.maxAge} s`, 'make a new plan');
  }
  const opts: PlanOptions = { inventory: plan.inventory, playbook: plan.playbook, limit: plan.limit, tags: plan.tags, skipTags: plan.skipTags, forks: o.forks };
  const { plan: now } = await checkRun(opts);
  const refused: Record<string, string[]> = {};
  const toApply: string[] = [];
  for (const [host, planned] of Object.entries(plan.hosts)) {
    const current = now.hosts[host];
    if (!current) {
      refused[host] = ['no longer selected by the inventory and limit'];
      continue;
    }
    const drift = hostDrift(planned, current);
    if (drift.length) refused[host] = drift;
    else if (planned.tasks.length) toApply.push(host);
  }
  for (const host of Object.keys(now.hosts)) if (!plan.hosts[host]) refused[host] = ['not in the plan'];
  for (const [host, why] of Object.entries(refused)) {
    process.stderr.write(`provision: ${host}: refused, the host drifted since the plan:\n${why.map((w) => `  - ${w}`).join('\n')}\n`);
  }
  const anyRefused = Object.keys(refused).length > 0;
  if (anyRefused && o.allOrNothing) {
    process.stderr.write('provision: --all-or-nothing: nothing applied\n');
    return EXIT.DRIFT_REFUSED;
  }
  if (toApply.length === 0) {
    out(anyRefused ? 'nothing applied' : 'nothing to apply: every host already matches');
    return anyRefused ? EXIT.DRIFT_REFUSED : EXIT.OK;
  }
  const inventory = loadInventory(plan.inventory);
  const playbook = loadPlaybook(plan.playbook);
  const guard = new PlanGuard(plan);
  let res: RunResult;
  try {
    res = await runPlaybook({ inventory, playbook, limit: toApply.join(','), tags: plan.tags, skipTags: plan.skipTags, forks: o.forks, check: false, guard, reporter: o.reporter });
  } finally {
    await o.reporter.close?.();
  }
  for (const host of toApply) {
    const r = res.hosts.get(host);
    if (!(r instanceof HostRun) || r.failed || r.unreachable) continue;
    if (r.refused) {
      process.stderr.write(`provision: ${host}: refused during the run, stopped before doing what the plan does not show:\n  - ${r.refused}\n`);
      continue;
    }
    // Nothing beyond the plan was done; a planned change the run found already made is only said.
    const notMade = guard.notMade(host);
    if (notMade.length) process.stderr.write(`provision: note: ${host}: planned changes the run found already made:\n${notMade.map((l) => `  - ${l}`).join('\n')}\n`);
  }
  if (res.exitCode === EXIT.FAILED || res.exitCode === EXIT.UNREACHABLE) return res.exitCode;
  return anyRefused ? EXIT.DRIFT_REFUSED : res.exitCode;
}

/** Drift: does every host match the playbook? 0 yes, 2 something drifted, 1 errors, 3 unreachable. */
export async function driftCommand(o: PlanOptions & { json?: boolean }): Promise<number> {
  const { res, plan } = await checkRun(o);
  const report = Object.fromEntries(
    Object.entries(plan.hosts).map(([h, p]) => [h, { drifted: p.tasks.length > 0, unreachable: p.unreachable, failed: p.failed, changes: changeLines(p) }]),
  );
  if (o.json) out(JSON.stringify({ kind: 'drift', exitCode: res.exitCode, hosts: report }));
  else {
    for (const [h, r] of Object.entries(report)) {
      if (r.unreachable) out(`${h}: UNREACHABLE: ${r.unreachable}`);
      else if (r.failed) out(`${h}: ERROR: ${r.failed}`);
      else if (r.drifted) out(`${h}: DRIFTED\n${r.changes.map((c) => `  - ${c}`).join('\n')}`);
      else out(`${h}: in sync`);
    }
  }
  return res.exitCode;
}

export function parseMaxAge(v: string): number {
  const m = /^(\d+)(s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new InputError(`--max-age: "${v}" is not a duration like 900, 15m, 2h or 1d`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}
