import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { InventoryError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';
import { canPrompt, promptHidden } from '../prompt.js';
import { decryptVault, parseVaultText, VaultFormatError, VaultPasswordError } from './decrypt.js';

/** The environment variable that may hold the vault password itself. */
export const VAULT_PASSWORD_ENV = 'PROVISION_VAULT_PASSWORD';

/** A password script gets this long to print the password (it may ask a keychain or a cloud secret manager). */
const SCRIPT_TIMEOUT_MS = 30_000;

export interface KeyringOptions {
  /** --vault-password-file: a file holding the password, or an executable that prints it. */
  passwordFile?: string;
  env: NodeJS.ProcessEnv;
  interactive?: boolean;
}

/**
 * The vault password of a run, asked for once and only when a vault text is first read:
 * --vault-password-file (a file, or a script run without a shell whose stdout is the password,
 * as Ansible does), else $PROVISION_VAULT_PASSWORD, else a prompt on the terminal.
 * The password is a Secret as soon as it is known: masked in every output.
 */
export class VaultKeyring {
  #password?: { bytes: Buffer; from: string };

  constructor(private readonly opts: KeyringOptions) {}

  /** Decrypt a vault text; `what` names it in errors ("file", or "file:line:col: var"), which never show a value. */
  decrypt(text: string, what: string): string {
    let vaultId: string | undefined;
    try {
      vaultId = parseVaultText(text).vaultId;
    } catch (err) {
      if (err instanceof VaultFormatError) throw new InventoryError(`${what}: not a valid ansible-vault text: ${err.message}`);
      throw err;
    }
    const { bytes, from } = this.password(what);
    let plain: Buffer;
    try {
      plain = decryptVault(text, bytes);
    } catch (err) {
      if (err instanceof VaultPasswordError) {
        throw new InventoryError(
          `${what}: the vault password from ${from} does not decrypt it${vaultId ? ` (vault id "${vaultId}")` : ''}`,
          'wrong password, or encrypted with another one',
        );
      }
      if (err instanceof VaultFormatError) throw new InventoryError(`${what}: not a valid ansible-vault text: ${err.message}`);
      throw err;
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(plain);
    } catch {
      throw new InventoryError(`${what}: its decrypted content is not UTF-8 text`);
    }
  }

  private password(what: string): { bytes: Buffer; from: string } {
    this.#password ??= this.obtain(what);
    return this.#password;
  }

  private obtain(what: string): { bytes: Buffer; from: string } {
    const { passwordFile, env } = this.opts;
    let password: string;
    let from: string;
    if (passwordFile) {
      from = `--vault-password-file ${passwordFile}`;
      password = readPasswordFile(passwordFile);
    } else if (env[VAULT_PASSWORD_ENV] !== undefined) {
      from = `$${VAULT_PASSWORD_ENV}`;
      password = env[VAULT_PASSWORD_ENV]!;
    } else {
      const asked = canPrompt(this.opts.interactive) ? promptHidden('Vault password: ') : undefined;
      if (asked === undefined) {
        throw new InventoryError(
          `${what}: is encrypted with ansible-vault, and no vault password was given`,
          `pass --vault-password-file FILE, set $${VAULT_PASSWORD_ENV}, or run on a terminal to be asked`,
        );
      }
      from = 'the terminal';
      password = asked;
    }
    if (password === '') throw new InventoryError(`${from}: the vault password is empty`);
    // Masked from here on, wherever it might be printed.
    new Secret('vault password', password);
    return { bytes: Buffer.from(password, 'utf8'), from };
  }
}

function readPasswordFile(file: string): string {
  const where = `--vault-password-file ${file}`;
  let executable = false;
  try {
    if (!statSync(file).isFile()) throw new InventoryError(`${where}: not a file`);
    accessSync(file, constants.X_OK);
    executable = true;
  } catch (err) {
    if (err instanceof InventoryError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InventoryError(`${where}: no such file`);
    if (code !== 'EACCES') throw new InventoryError(`${where}: ${code ?? String(err)}`);
  }
  if (executable) {
    // A script, as Ansible runs it: no arguments, no shell; its stdout is the password.
    try {
      const out = execFileSync(file, [], { stdio: ['inherit', 'pipe', 'inherit'], timeout: SCRIPT_TIMEOUT_MS, maxBuffer: 64 * 1024 });
      return out.toString('utf8').replace(/^[\r\n]+|[\r\n]+$/g, '');
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { status?: number | null; signal?: string | null };
      if (e.code === 'ETIMEDOUT') throw new InventoryError(`${where}: the script did not finish within ${SCRIPT_TIMEOUT_MS / 1000}s`);
      if (e.status !== undefined && e.status !== null) throw new InventoryError(`${where}: the script exited with code ${e.status}`);
      throw new InventoryError(`${where}: the script could not run (${e.code ?? e.signal ?? 'unknown error'})`);
    }
  }
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InventoryError(`${where}: ${code === 'EACCES' ? 'permission denied' : (code ?? String(err))}`);
  }
}
