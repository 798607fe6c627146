import { runPlaybook } from '../executor/index.js';
import { exitCodeOf, EXIT, withExitCode } from './exit-codes.js';
import { checkStartAtTask, listHosts, listTasks } from './list.js';
import { loadInputs } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { makeReporter, printOut } from './output.js';

export interface RunCommandOptions extends CommonOptions {
  playbook: string;
  tags?: string[];
  skipTags?: string[];
  serial?: number;
  check?: boolean;
  diff?: boolean;
  log?: string;
  color?: boolean;
  listHosts?: boolean;
  listTasks?: boolean;
  startAtTask?: string;
}

/** `provision -i INV [-p PLAYBOOK]`: converge (or, with --check, dry-run) the hosts. */
export async function runCommand(o: RunCommandOptions): Promise<number> {
  const { inventory, playbook } = loadInputs({ inventory: requireInventory(o), playbook: o.playbook });
  // Listing contacts no host.
  if (o.listHosts || o.listTasks) {
    const lines = [...(o.listHosts ? listHosts(inventory, playbook, o.limit) : []), ...(o.listTasks ? listTasks(inventory, playbook, o.limit) : [])];
    printOut(lines.join('\n'));
    return EXIT.OK;
  }
  if (o.startAtTask !== undefined) checkStartAtTask(playbook, o.startAtTask);
  const reporter = withExitCode(await makeReporter(o));
  try {
    const res = await runPlaybook({
      inventory,
      playbook,
      limit: o.limit,
      forks: o.forks,
      serial: o.serial,
      check: Boolean(o.check),
      tags: o.tags,
      skipTags: o.skipTags,
      startAtTask: o.startAtTask,
      reporter,
    });
    return exitCodeOf(res);
  } finally {
    await reporter.close?.();
  }
}
