// The subcommands whose code is loaded only when one of them runs: their options and help are
// declared here, with nothing heavier than commander; each action imports its module then. `provision
// --help`, `provision lab …` or a run of a playbook never load the database, CA, deploy or inventory
// report code (nor, for --help, the engine): start-up is paid only for what a command uses
// (README "Speed", bench/startup.mjs).
import type { Command } from 'commander';
import { positiveInt } from './options.js';

type Register = (program: Command, addCommon: (cmd: Command) => Command, setCode: (c: number) => void) => void;

/** The steps of `provision pki rotate` (src/cli/pki.ts checks the one given). */
export const ROTATION_STEPS = ['start', 'promote', 'finish', 'abort'] as const;

export const registerDbCommand: Register = (program, addCommon, setCode) => {
  const db = program.command('db').description('the database tier: db status | switchover | failover | rejoin (docs/database.md)');
  addCommon(db.command('status').description('which server is the primary; each replica: source, threads, lag, GTIDs received/executed. Exit 1 with two writers or none')).action(
    async (o) => setCode(await (await import('./db.js')).dbStatusCommand(o)),
  );
  addCommon(db.command('switchover').description('planned move of the writer to --to HOST, no acknowledged write lost; rolls back on failure before the promotion'))
    .requiredOption('--to <host>', 'the replica to promote')
    .option('--writes-timeout <seconds>', 'wait this long for uncommitted writes on the old primary, then kill their connections', positiveInt('--writes-timeout'), 10)
    .option('--catch-up-timeout <seconds>', 'bound on each wait for a server to apply a GTID position', positiveInt('--catch-up-timeout'), 60)
    .action(async (o) => setCode(await (await import('./db.js')).dbSwitchoverCommand(o)));
  addCommon(db.command('failover').description('unplanned: the primary does not answer; fence it (port closed, read-only) and promote the most advanced replica'))
    .option('--force', 'promote even when the failed primary cannot be fenced (unreachable over SSH); reports what may be lost')
    .option('--to <host>', 'the replica to promote, only if it is as advanced as every other')
    .option('--catch-up-timeout <seconds>', 'bound on each wait for a server to apply a GTID position', positiveInt('--catch-up-timeout'), 60)
    .action(async (o) => setCode(await (await import('./db.js')).dbFailoverCommand(o)));
  addCommon(db.command('rejoin').description('bring HOST back as a replica of the current primary from a consistent copy of it (its old data moved aside, its fence lifted)'))
    .argument('<host>', 'the database host to rejoin (a former primary)')
    .option('--catch-up-timeout <seconds>', 'bound on each wait for a server to apply a GTID position', positiveInt('--catch-up-timeout'), 60)
    .action(async (host: string, o) => setCode(await (await import('./db.js')).dbRejoinCommand(host, o)));
};

export const registerPkiCommand: Register = (program, addCommon, setCode) => {
  const pki = program.command('pki').description("the inventory's internal CA: pki status | pki rotate start|promote|finish|abort (docs/pki.md)");
  addCommon(pki.command('status').description('the CA folder beside the inventory: its phase and every CA trusted now'))
    .option('--hosts', "also read every host's certificates and CA bundles of the internal CA: which CA signed each, which CAs each trusts")
    .action(async (o) => setCode(await (await import('./pki.js')).pkiStatusCommand(o)));
  addCommon(
    pki
      .command('rotate')
      .description('one step of a CA rotation, a converge of every host between steps: start (new CA trusted beside the old) → promote (new CA signs) → finish (old CA dropped); abort: one step back'),
  )
    .argument('<step>', ROTATION_STEPS.join(' | '))
    .option('--force', 'go on when a host cannot be read to check it is ready (promote, finish)')
    .action(async (step: string, o) => setCode(await (await import('./pki.js')).pkiRotateCommand(step, o)));
};

/** `provision deploy | rollback | releases` (docs/deploy.md). */
export const registerDeployCommands: Register = (program, addCommonOptions, setCode) => {
  addCommonOptions(program.command('deploy').description('roll a release of the app out to the web servers, one batch at a time through the load balancers'))
    .option('-r, --release <path|ref>', 'a directory or archive (.tar.gz, .tgz, .tar) on the control machine (default: app_source); with app_repository: a branch, tag or full commit (default: app_ref)')
    .option('-C, --check', 'say which release would go to which host; change nothing')
    .action(async (o) => setCode(await (await import('./deploy.js')).deployCommand(o)));
  addCommonOptions(program.command('rollback').description('every web server back one release, rolling the same way'))
    .option('-C, --check', 'say which release each host would go back to; change nothing')
    .action(async (o) => setCode(await (await import('./deploy.js')).rollbackCommand(o)));
  addCommonOptions(program.command('releases').description('the releases on each web server: current, kept, where a rollback goes')).action(async (o) =>
    setCode(await (await import('./deploy.js')).releasesCommand(o)),
  );
};

export function registerInventoryCommand(program: Command, addCommon: (cmd: Command) => Command): void {
  addCommon(program.command('inventory').description('show the loaded inventory: hosts, groups, connection settings (--vars: the vars, secrets masked); connects to nothing'))
    .option('--vars', "also each host's vars, resolved (vault values decrypted, shown masked)")
    .action(async (o: { inventory?: string; limit?: string; json?: boolean; vars?: boolean }) => (await import('./inventory-command.js')).inventoryCommand(o));
}
