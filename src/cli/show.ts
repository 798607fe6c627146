import { readPlan, type PlanFile } from '../plan/plan.js';
import { renderChange } from '../report/diff.js';
import { colors } from '../report/format.js';
import { EXIT } from './exit-codes.js';
import { printOut } from './output.js';

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
      lines.push(`  ${t.handler ? 'handler ' : ''}${t.role ? t.role + ' : ' : ''}${t.task}${t.unknown ? c.magenta(` (unknown: ${t.unknown}; apply refuses it)`) : ''}`);
      for (const ch of t.changes) lines.push(...renderChange(ch).split('\n').map((l) => '    ' + l));
    }
  }
  return lines;
}

/** `provision show PLAN`: print a saved plan. */
export async function showCommand(file: string): Promise<number> {
  for (const l of renderPlan(readPlan(file), Boolean(process.stdout.isTTY))) printOut(l);
  return EXIT.OK;
}
