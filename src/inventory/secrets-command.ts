import { execFileSync } from 'node:child_process';
import { InventoryError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import { shlexSplit } from './shlex.js';

/*
 * `secrets_command: "pass show provision/{name}"`: a program that prints a secret's value (pass,
 * sops, a cloud secret manager's CLI). It is split into words as a shell would split it, but run
 * without a shell ({name} is replaced inside words, so a name is never parsed as shell syntax);
 * only for secrets a selected host's vars read; within a time bound. Its output (less the final
 * line break) is the value, a Secret. A failure names the secret, the program and its exit code,
 * never its output: that could hold the value or a piece of it.
 */

export const SECRETS_COMMAND_TIMEOUT_MS = 30_000;
const MAX_OUTPUT = 1024 * 1024;

/** The argv of a secrets_command for one secret; undefined when the text cannot be split. */
export function secretsCommandArgv(command: string, name: string): string[] | undefined {
  const words = shlexSplit(command);
  if (!words || words.length === 0) return undefined;
  return words.map((w) => w.split('{name}').join(name));
}

export function runSecretsCommand(command: string, name: string, at: string): Secret {
  const argv = secretsCommandArgv(command, name)!;
  const what = `${at}: secret "${name}": secrets_command ${argv[0]}`;
  let out: Buffer;
  try {
    out = execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], timeout: SECRETS_COMMAND_TIMEOUT_MS, maxBuffer: MAX_OUTPUT, windowsHide: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { status?: number | null; signal?: NodeJS.Signals | null };
    const hint = 'its output is not shown (it could hold the secret): run the command yourself to see why';
    if (e.code === 'ENOENT') throw new InventoryError(`${what}: no such program`);
    if (e.code === 'EACCES') throw new InventoryError(`${what}: permission denied`);
    if (e.code === 'ETIMEDOUT') throw new InventoryError(`${what}: did not finish within ${SECRETS_COMMAND_TIMEOUT_MS / 1000}s`, hint);
    if (e.code === 'ENOBUFS') throw new InventoryError(`${what}: printed more than ${MAX_OUTPUT / 1024} KiB`);
    if (typeof e.status === 'number') throw new InventoryError(`${what}: exited with code ${e.status}`, hint);
    if (e.signal) throw new InventoryError(`${what}: was killed by ${e.signal}`, hint);
    throw new InventoryError(`${what}: could not run (${e.code ?? 'unknown error'})`);
  }
  const value = out.toString('utf8').replace(/\r?\n$/, '');
  if (value === '') throw new InventoryError(`${what}: printed nothing`);
  if (value.length < 8) throw new InventoryError(`${at}: secret "${name}" is shorter than 8 characters (from secrets_command)`);
  return new Secret(name, value);
}
