import path from 'node:path';
import { loadPlaybook, runPlaybook, type Playbook, type RunResult } from '../executor/index.js';
import { loadInventory, type Inventory } from '../inventory/index.js';
import { planFromRun, type PlanFile } from '../plan/plan.js';
import { MemoryReporter } from '../report/renderers.js';
import '../roles/builtin.js';
import { expandRoleDependencies } from '../project/index.js';

/** The one place a command loads its inventory (a name or a path) and, when it runs one, its playbook. */
export function loadInputs(o: { inventory: string; playbook: string }): { inventory: Inventory; playbook: Playbook } {
  const inventory = loadInventory(o.inventory);
  const playbook = loadPlaybook(path.resolve(o.playbook));
  expandRoleDependencies(playbook);
  return { inventory, playbook };
}

export { loadInventory };

export interface CheckRunOptions {
  inventory: string;
  playbook: string;
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  forks?: number;
  strict?: boolean;
}

/** A silent check run and the plan it makes (plan, drift). */
export async function checkRun(o: CheckRunOptions): Promise<{ res: RunResult; plan: PlanFile }> {
  const { inventory, playbook } = loadInputs(o);
  const res = await runPlaybook({ inventory, playbook, limit: o.limit, tags: o.tags, skipTags: o.skipTags, forks: o.forks, strict: o.strict, check: true, reporter: new MemoryReporter() });
  const plan = planFromRun(res, { inventory: inventory.file, playbook: playbook.file, limit: o.limit, tags: o.tags, skipTags: o.skipTags });
  return { res, plan };
}
