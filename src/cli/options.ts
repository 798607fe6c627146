import type { Command } from 'commander';
import { VAULT_PASSWORD_ENV } from '../inventory/vault/keyring.js';
import { InputError } from '../util/errors.js';
import { DEFAULT_FORKS } from '../executor/forks.js';

/** Options every host command takes. */
export interface CommonOptions {
  inventory?: string;
  limit?: string;
  forks?: number;
  json?: boolean;
  verbose: number;
}

export function list(v: string, prev: string[] = []): string[] {
  return [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
}

export function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InputError(`${name}: "${v}" is not a whole number of 1 or more`);
    return n;
  };
}

/** -v: ok and skipped tasks, timings, notes; -vv: also each command a task ran, and its output (masked). */
export const MAX_VERBOSITY = 2;

export function verbosity(_v: string, prev: number): number {
  if (prev >= MAX_VERBOSITY) throw new InputError(`-v may be given at most ${MAX_VERBOSITY} times (-vv: each command and its output)`);
  return prev + 1;
}

/** Options every command that reads an inventory takes. */
export function addInventoryOptions(cmd: Command): Command {
  return cmd
    .option('--vault-password-file <file>', `ansible-vault password: a file, or an executable that prints it (else $${VAULT_PASSWORD_ENV}, else asked on a terminal)`)
    .option('--project <dir>', 'the project folder (inventory/, playbooks/, roles/, modules/); relative paths are read from it (default: the current directory)');
}

/** Called before a command runs: its options and where warnings go apply to every inventory it loads. */
export async function applyInventoryOptions(o: { vaultPasswordFile?: string }): Promise<void> {
  // Loaded here, not at the top: --help and commands that read no inventory never load its parsers.
  const { configureInventoryLoading } = await import('../inventory/index.js');
  configureInventoryLoading({
    vaultPasswordFile: o.vaultPasswordFile,
    onWarning: (message) => process.stderr.write(`provision: warning: ${message}\n`),
  });
}

export function addCommonOptions(cmd: Command): Command {
  return addInventoryOptions(cmd)
    .option('-i, --inventory <name>', 'inventory name (inventory/NAME.yml) or path (required here or as inventory: in provision.yml)')
    .option('-l, --limit <pattern>', 'hosts or groups: names, globs, "!exclude", "&intersect", comma separated')
    .option('-f, --forks <n>', `hosts worked on at once (default: ${DEFAULT_FORKS}; beyond that many hosts, one waits with its connection closed)`, positiveInt('--forks'))
    .option('--json', 'one JSON event per line on stdout')
    .option('-v, --verbose', 'more output: -v ok and skipped tasks; -vv also each command run and its output', verbosity, 0);
}

/** Checked here rather than by commander, so that `provision lab …` does not need an inventory. */
export function requireInventory(o: { inventory?: string }): string {
  if (!o.inventory) throw new InputError('--inventory is required', 'e.g. provision --inventory prod (reads inventory/prod.yml)');
  return o.inventory;
}

/** Options of the commands that show a run: its log file and colour (else from provision.yml). */
export function addOutputOptions(cmd: Command): Command {
  return cmd
    .option('--log <file>', 'also write what the plain view prints to FILE (appended, timestamps, secrets masked, mode 0600)')
    .option('--no-color', 'no colour (as NO_COLOR=1)');
}
