import { writePlan } from '../plan/plan.js';
import { exitCodeOf } from './exit-codes.js';
import { checkRun, type CheckRunOptions } from './load.js';
import { printOut } from './output.js';
import { renderPlan } from './show.js';

/** `provision plan`: a dry run saved as a plan, every change per host and the state it was computed from. */
export async function planCommand(o: CheckRunOptions & { out?: string; json?: boolean }): Promise<number> {
  const { res, plan } = await checkRun(o);
  if (o.out) writePlan(o.out, plan);
  if (o.json) printOut(JSON.stringify(plan));
  else {
    for (const l of renderPlan(plan, Boolean(process.stdout.isTTY))) printOut(l);
    if (o.out) printOut(`plan written to ${o.out}; apply it with: provision apply ${o.out}`);
  }
  return exitCodeOf(res);
}
