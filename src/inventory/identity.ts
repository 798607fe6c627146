import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import { InventoryError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import type { Host } from './model.js';
import { canPrompt, promptHidden } from './prompt.js';

/** Whether what ssh2's parseKey gave says the key can only be read with its passphrase. */
export function wantsPassphrase(parsed: ReturnType<typeof ssh2.utils.parseKey>): boolean {
  return parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message);
}

/** Whether a private key can only be read with its passphrase. */
export function isPassphraseProtected(key: Buffer, passphrase?: string): boolean {
  return wantsPassphrase(ssh2.utils.parseKey(key, passphrase));
}

/** Passphrases asked this run, per key file: each key is asked for once. */
const asked = new Map<string, Secret>();
const TRIES = 3;

/**
 * A passphrase-protected identity file, before connecting: through the agent when there is one
 * (the agent holds the unlocked key: `ssh-add`), else its passphrase asked on the terminal (three
 * tries), else a clear error. An unreadable or unprotected key is left to the transport.
 */
export function unlockIdentity(host: Host, interactive: boolean | undefined): void {
  const c = host.connection;
  if (!c.identityFile || c.identityPassphrase) return;
  let key: Buffer;
  try {
    key = readFileSync(c.identityFile);
  } catch {
    return;
  }
  if (!isPassphraseProtected(key)) return;
  const agent = c.agent ?? process.env.SSH_AUTH_SOCK;
  if (agent) {
    c.agent = agent;
    return;
  }
  const known = asked.get(c.identityFile);
  if (known) {
    c.identityPassphrase = known;
    return;
  }
  if (!canPrompt(interactive)) {
    throw new InventoryError(
      `host ${host.name}: identity file ${c.identityFile} is protected by a passphrase, and there is no ssh-agent nor a terminal to ask it on`,
      `add it to an agent (eval $(ssh-agent); ssh-add ${c.identityFile}), or run on a terminal`,
    );
  }
  for (let i = 0; i < TRIES; i++) {
    const answer = promptHidden(`Passphrase for ${c.identityFile}: `);
    if (answer === undefined) break;
    if (!(ssh2.utils.parseKey(key, answer) instanceof Error)) {
      const secret = new Secret(`passphrase of ${c.identityFile}`, answer);
      asked.set(c.identityFile, secret);
      c.identityPassphrase = secret;
      return;
    }
  }
  throw new InventoryError(`host ${host.name}: identity file ${c.identityFile}: no right passphrase given`);
}
