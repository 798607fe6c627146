import { runPlaybook } from '../executor/index.js';
import { exitCodeOf, EXIT, withExitCode } from './exit-codes.js';
import { checkStartAtTask, listHosts, listTasks } from './list.js';
import { loadInputs } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { makeReporter, printErr, printOut } from './output.js';

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
  strict?: boolean;
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
  const shown = withExitCode(await makeReporter(o));
  // A role's task names are known per host only: a name no host reached ran nothing, and says so.
  let startReached = false;
  const reporter: typeof shown = {
    emit: (e) => {
      if (e.kind === 'task-result' && e.task === o.startAtTask) startReached = true;
      shown.emit(e);
    },
    close: () => shown.close?.(),
  };
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
      strict: o.strict,
      reporter,
    });
    if (o.startAtTask !== undefined && !startReached) printErr(`provision: warning: --start-at-task: no host reached a task named "${o.startAtTask}"; no task ran`);
    return exitCodeOf(res);
  } finally {
    await reporter.close?.();
  }
}
