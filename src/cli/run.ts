import { runPlaybook } from '../executor/index.js';
import { exitCodeOf, withExitCode } from './exit-codes.js';
import { loadInputs } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { makeReporter } from './output.js';

export interface RunCommandOptions extends CommonOptions {
  playbook: string;
  tags?: string[];
  skipTags?: string[];
  serial?: number;
  check?: boolean;
  diff?: boolean;
  strict?: boolean;
}

/** `provision -i INV [-p PLAYBOOK]`: converge (or, with --check, dry-run) the hosts. */
export async function runCommand(o: RunCommandOptions): Promise<number> {
  const { inventory, playbook } = loadInputs({ inventory: requireInventory(o), playbook: o.playbook });
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
      strict: o.strict,
      reporter,
    });
    return exitCodeOf(res);
  } finally {
    await reporter.close?.();
  }
}
