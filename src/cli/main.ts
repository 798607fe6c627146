import { Command, CommanderError, Option } from 'commander';
import { InputError, PlanRefused } from '../util/errors.js';
import { TOOL_VERSION } from '../util/version.js';
import { DEFAULT_FORKS } from '../executor/forks.js';
import { registerDbCommand, registerDeployCommands, registerInventoryCommand, registerPkiCommand } from './commands.js';
import { EXIT } from './exit-codes.js';
import { registerInitCommand } from './init.js';
import { addCommonOptions, addInventoryOptions, addOutputOptions, applyInventoryOptions, list, positiveInt, requireInventory, verbosity } from './options.js';
import { guardOutputStreams, installLastResortHandlers, makeReporter, printError, printOut, surviveTerminalHangup } from './output.js';
import { completionScript, COMPLETION_SHELLS } from './completion.js';
import { helpTopicList, helpTopicText, HELP_TOPICS } from './help-topics.js';
import { editDistance } from '../util/edit-distance.js';

// Only what declares the commands is imported above (commander, the options, the help): each
// action imports the code it runs when it runs, so `--help`, `help` or `lab` never load the engine,
// SSH, the inventory and playbook parsers or their zod schemas, and a run never loads the database,
// CA or deploy code (README "Speed": start-up, bench/startup.mjs).
export function buildProgram(setCode: (c: number) => void): Command {
  const program = new Command('provision')
    .version(TOOL_VERSION.replace(/^provision /, ''), '-V, --version', 'print the version')
    .description('Converge hosts over SSH, idempotently. Exit codes: 0 no change, 2 changed (or would change), 1 failed, 3 unreachable, 4 bad input, 5 plan refused.')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s),
      outputError: (s, write) => write(`provision: error: ${s.replace(/^error: /, '')}`),
    })
    .helpCommand(false)
    .hook('preAction', async (_program, command) => {
      // First, before any module an action imports builds a zod schema (zod itself is not loaded by
      // `--help`: every action runs after this hook, and nothing imported above uses zod).
      await import('./zod-jitless.js');
      // The project first (--project or the current directory); its provision.yml gives the
      // defaults, the command line wins; then relative paths resolve from the project.
      const [{ applyConfig, loadConfig }, { applyProjectOption, projectDir, useProject }] = await Promise.all([import('./config.js'), import('../project/project.js')]);
      useProject(command.opts().project);
      applyConfig(command, loadConfig(projectDir()));
      applyProjectOption(command.opts());
      await applyInventoryOptions(command.opts());
    });

  addOutputOptions(addCommonOptions(program))
    .option('-p, --playbook <file>', 'playbook file', 'playbooks/site.yml')
    .option('-t, --tags <tags>', 'run only tasks with these tags (roles are tags too)', list)
    .option('--skip-tags <tags>', 'skip tasks with these tags', list)
    .option('-s, --serial <n>', 'rolling batches of N hosts per play', positiveInt('--serial'))
    .option('-C, --check', 'dry run: change nothing, report what would change')
    .option('--detailed-exitcode', 'with --check: exit 0 in sync, 2 drift (the default exit codes already say so)')
    .option('-D, --diff', 'show unified diffs of file changes')
    .option('--list-hosts', "list each play's hosts (after --limit) and stop; nothing is contacted")
    .option('--list-tasks', "list each play's roles and tasks with their tags and stop; nothing is contacted")
    .option('--start-at-task <name>', 'leave out every task before the first task of this name')
    .option('--strict', 'a play naming a host or group the inventory does not have is an error (exit 4), not a warning')
    .action(async (o) => {
      if (program.args.length) throw unknownCommand(program, program.args[0]!);
      setCode(await (await import('./run.js')).runCommand(o));
    });

  addCommonOptions(program.command('facts').description('print the facts gathered from each host (JSON)')).action(async (o) => setCode(await (await import('./host-commands.js')).factsCommand(o)));
  addCommonOptions(program.command('ping').description('check SSH, host keys and become on each host')).action(async (o) => setCode(await (await import('./host-commands.js')).pingCommand(o)));

  addCommonOptions(program.command('plan').description('dry run saved as a plan: every change per host, and the state it was computed from'))
    .option('-p, --playbook <file>', 'playbook file', 'playbooks/site.yml')
    .option('-t, --tags <tags>', 'only tasks with these tags', list)
    .option('--skip-tags <tags>', 'skip tasks with these tags', list)
    .option('-o, --out <file>', 'write the plan (JSON) to this file')
    .option('--strict', 'a play naming a host or group the inventory does not have is an error (exit 4), not a warning')
    .action(async (o) => setCode(await (await import('./plan.js')).planCommand({ ...o, inventory: requireInventory(o) })));
  program
    .command('show')
    .description('print a saved plan')
    .argument('<plan>', 'plan file')
    .action(async (file: string) => setCode(await (await import('./show.js')).showCommand(file)));
  addOutputOptions(addInventoryOptions(program.command('apply')))
    .description('apply exactly a saved plan; hosts that drifted since are refused (exit 5)')
    .argument('<plan>', 'plan file')
    .option('--all-or-nothing', 'refuse every host when any host drifted')
    .option('--max-age <duration>', 'refuse a plan older than this (900, 15m, 2h, 1d)', '1h')
    .option('-f, --forks <n>', `hosts worked on at once (default: ${DEFAULT_FORKS}; beyond that many hosts, one waits with its connection closed)`, positiveInt('--forks'))
    .option('-D, --diff', 'show unified diffs of file changes')
    .option('--json', 'one JSON event per line on stdout')
    .option('-v, --verbose', 'more output: -v ok and skipped tasks; -vv also each command run and its output', verbosity, 0)
    .action(async (file: string, o) => {
      const { applyCommand, parseMaxAge } = await import('./apply.js');
      setCode(await applyCommand(file, { allOrNothing: o.allOrNothing, maxAge: parseMaxAge(o.maxAge), forks: o.forks, reporter: await makeReporter(o) }));
    });
  addCommonOptions(program.command('drift').description('does every host match the playbook? exit 0 in sync, 2 drifted, 1 error, 3 unreachable'))
    .option('-p, --playbook <file>', 'playbook file', 'playbooks/site.yml')
    .option('-t, --tags <tags>', 'only tasks with these tags', list)
    .option('--skip-tags <tags>', 'skip tasks with these tags', list)
    .option('--strict', 'a play naming a host or group the inventory does not have is an error (exit 4), not a warning')
    .action(async (o) => setCode(await (await import('./drift.js')).driftCommand({ ...o, inventory: requireInventory(o) })));

  registerInventoryCommand(program, addCommonOptions);
  registerDeployCommands(program, addCommonOptions, setCode);
  registerInitCommand(program, setCode);
  registerDbCommand(program, addCommonOptions, setCode);
  registerPkiCommand(program, addCommonOptions, setCode);
  program
    .command('completion')
    .description(`print a shell completion script (${COMPLETION_SHELLS.join(', ')}): eval "$(provision completion bash)"`)
    .argument('<shell>', COMPLETION_SHELLS.join(' or '))
    .action((shell: string) => printOut(completionScript(program, shell).trimEnd()));
  program
    .command('help')
    .description(`help on a command, or a topic: ${Object.keys(HELP_TOPICS).join(', ')}`)
    .argument('[topic]', 'a command or a topic')
    .action(async (topic?: string) => {
      if (topic === undefined) return printOut(`${program.helpInformation()}\n${helpTopicList()}\n\nSettings: ${(await import('./config.js')).CONFIG_FILE} in the project (provision help config).`);
      // A topic first (inventory and lab are both): a command's options are also its --help.
      const command = program.commands.find((c) => c.name() === topic);
      printOut(topic in HELP_TOPICS || !command ? helpTopicText(topic) : command.helpInformation().trimEnd());
    });
  program
    .command('lab')
    .description('the built-in lab of real hosts on this machine: lab up | down | status | …')
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .argument('[args...]')
    .action(async (args: string[]) => {
      const { labMain } = await import('../lab/index.js');
      setCode(await labMain(args));
    });
  // A word that is no command reaches the run's action: said as a mistyped command there. Set last:
  // commands made after it would inherit it, and take extra words silently.
  program.allowExcessArguments();
  return program;
}

/** A first word that is no command: bad input, with the nearest command when one is near. */
function unknownCommand(program: Command, word: string): InputError {
  const names = program.commands.map((c) => c.name());
  const near = names.map((n) => ({ n, d: editDistance(word, n) })).sort((a, b) => a.d - b.d)[0];
  const meant = near && (near.d <= 2 || near.n.startsWith(word)) ? ` (did you mean ${near.n}?)` : '';
  return new InputError(`unknown command "${word}"${meant}`, `commands: ${names.join(', ')}; provision help`);
}

/** The CLI. Returns the exit code rather than exiting, so it runs in-process in tests. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => (code = c));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      return EXIT.INPUT; // commander already printed the message
    }
    printError(err);
    if (err instanceof InputError) return EXIT.INPUT;
    if (err instanceof PlanRefused) return EXIT.DRIFT_REFUSED;
    return EXIT.FAILED;
  }
}

/**
 * The CLI as a process (bin/provision.cjs): a closed pipe or a terminal that hangs up does not end
 * the run, and no error ends it with a stack trace. `main` itself stays free of process-wide handlers for tests.
 */
export async function runCli(argv: string[]): Promise<number> {
  surviveTerminalHangup();
  guardOutputStreams();
  installLastResortHandlers();
  return main(argv);
}

/**
 * Every module a command imports when it runs (not the lab's nor the live view's, loaded lazily
 * before as well): the build evaluates them before it writes the bundle's code cache
 * (bin/bundle.cjs --make-cache), so a first run finds its code compiled as before they were lazy.
 */
export async function loadCommandModules(): Promise<void> {
  await Promise.all([
    import('./run.js'), import('./host-commands.js'), import('./plan.js'), import('./show.js'), import('./apply.js'), import('./drift.js'),
    import('./db.js'), import('./pki.js'), import('./deploy.js'), import('./inventory-command.js'), import('./config.js'), import('./log.js'),
    import('../project/project.js'), import('../inventory/index.js'), import('../report/renderers.js'),
  ]);
}

export { Option };
