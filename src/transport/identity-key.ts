import { createPrivateKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import ssh2, { type ParsedKey } from 'ssh2';
import { wantsPassphrase } from '../inventory/identity.js';

/**
 * What an identity file comes to: its parsed key; 'locked' (protected by a passphrase that was not
 * given: the agent's unlocked copy is used); or why it cannot be parsed.
 */
export type IdentityKey = { kind: 'key'; key: ParsedKey } | { kind: 'locked' } | { kind: 'unparsable'; why: string };

/**
 * Identity files read and parsed once, per file and passphrase, and shared by every host that uses
 * them. ssh2 would parse the key at every connect: for a passphrase-protected key that is its bcrypt
 * KDF in JavaScript, ~0.3 s of CPU each time (measured here: 307 ms per parse of an ed25519 key from
 * `ssh-keygen -N`), so a minute and a half of controller CPU for 300 hosts, and again at each
 * reconnect of a run with more hosts than forks. A plain key costs ~0.07 ms, a read of the file more.
 * Each use stats the file (microseconds): a file replaced or rewritten since (a rotated key, in a
 * process that runs for longer than one run: the API) is read again.
 */
const loaded = new Map<string, { stamp: string; keys: Map<string | undefined, IdentityKey> }>();
let reads = 0;

/** How many times an identity file was read and parsed in this process (what the cache saves; tests). */
export function identityReads(): number {
  return reads;
}

/** The key of `file` (a missing or unreadable file throws, with its code, for the caller to word). */
export function identityKey(file: string, passphrase: string | undefined): IdentityKey {
  const st = statSync(file);
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  let entry = loaded.get(file);
  if (entry?.stamp !== stamp) loaded.set(file, (entry = { stamp, keys: new Map() }));
  const known = entry.keys.get(passphrase);
  if (known) return known;
  const data = readFileSync(file);
  reads++;
  // One parse: without a passphrase, a locked key's parse is the error that says so.
  const parsed = ssh2.utils.parseKey(data, passphrase);
  const one = Array.isArray(parsed) ? (parsed as ParsedKey[])[0] : parsed;
  const key: IdentityKey =
    passphrase === undefined && wantsPassphrase(parsed)
      ? { kind: 'locked' }
      : one instanceof Error || one === undefined
        ? { kind: 'unparsable', why: one?.message ?? 'no key in it' }
        : one.isPrivateKey()
          ? { kind: 'key', key: signingOnce(one) }
          : { kind: 'unparsable', why: 'it holds a public key, not a private one' };
  entry.keys.set(passphrase, key);
  return key;
}

/**
 * The key signs with a KeyObject made once, not with its PEM text: ssh2's `sign` hands the PEM to
 * node:crypto, which parses it again at every signature (one per login: ~0.37 ms of CPU for an
 * ed25519 key here, 0.41 ms a signature against 0.04 with the KeyObject). Same algorithm and output
 * as ssh2's own `sign` (the hash it is given, else the key's own: none for ed25519, SHA-1/256/512 by
 * type); a key node:crypto cannot take as it is keeps ssh2's `sign`.
 */
function signingOnce(key: ParsedKey): ParsedKey {
  const hashSymbol = Object.getOwnPropertySymbols(key).find((s) => s.description === 'Hash Algorithm');
  if (hashSymbol === undefined) return key;
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(key.getPrivatePEM());
  } catch {
    return key;
  }
  const ownHash = (key as unknown as Record<symbol, string | null | undefined>)[hashSymbol] ?? null;
  const sign = (data: Buffer | string, algo?: string): Buffer | Error => {
    try {
      return cryptoSign(algo && typeof algo === 'string' ? algo : ownHash, typeof data === 'string' ? Buffer.from(data) : data, keyObject);
    } catch (error) {
      return error as Error; // as ssh2's own sign: an Error returned, not thrown
    }
  };
  Object.defineProperty(key, 'sign', { value: sign, configurable: true, writable: true });
  return key;
}
