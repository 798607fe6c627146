/**
 * Ed25519 key pairs made in-process with ssh2's generator (the lab's scale hosts, tests).
 *
 * ssh2 (1.17) strips every leading zero byte of the public key's BIT STRING, meant for the
 * "unused bits" byte only: one key in 256 whose first byte is 0 comes out 31 bytes long. Such a
 * key parses as text, but ssh2 rejects it in wire format, e.g. in an agent's identities answer,
 * so a test using it fails now and then, and sshd may refuse it as a host key. Drawing again until
 * the key is well-formed makes every key usable.
 */
import ssh2 from 'ssh2';

const { utils } = ssh2;

/** "ssh-ed25519" as an SSH string, then the 32-byte key as an SSH string. */
const ED25519_BLOB_LENGTH = 4 + 'ssh-ed25519'.length + 4 + 32;
const ATTEMPTS = 64;

export interface Ed25519Pair {
  /** OpenSSH private key text. */
  private: string;
  /** "ssh-ed25519 BASE64 COMMENT" */
  public: string;
}

export function ed25519KeyPair(options: { comment?: string; passphrase?: string; cipher?: string } = {}): Ed25519Pair {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', options);
    if (Buffer.from(pair.public.split(' ')[1]!, 'base64').length === ED25519_BLOB_LENGTH) return pair;
  }
  throw new Error(`ssh2 made no well-formed ed25519 key in ${ATTEMPTS} attempts`);
}
