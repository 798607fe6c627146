import { createDecipheriv, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';

/*
 * ansible-vault's format, as lib/ansible/parsing/vault/__init__.py writes it (VaultAES256):
 *
 *   $ANSIBLE_VAULT;1.1;AES256            (1.2 adds ";<vault id>")
 *   hex( hex(salt) "\n" hex(hmac) "\n" hex(ciphertext) ), in lines of 80 characters
 *
 * key1 (AES-256 key) | key2 (HMAC-SHA256 key) | iv (16 bytes) = PBKDF2-HMAC-SHA256(password, salt,
 * 10000 iterations, 80 bytes); the HMAC covers the ciphertext; AES-256-CTR over PKCS#7-padded text.
 */

export const VAULT_HEADER = '$ANSIBLE_VAULT;';

export interface VaultEnvelope {
  version: string;
  cipher: string;
  vaultId?: string;
  salt: Buffer;
  hmac: Buffer;
  ciphertext: Buffer;
}

/** Why a vault text cannot be used; never quotes the text. */
export class VaultFormatError extends Error {}
/** The password does not open this vault text (its HMAC does not match). */
export class VaultPasswordError extends Error {}

export function isVaultText(text: string): boolean {
  return text.trimStart().startsWith(VAULT_HEADER);
}

function unhex(s: string, what: string): Buffer {
  if (s.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(s)) throw new VaultFormatError(`${what} is not hexadecimal`);
  return Buffer.from(s, 'hex');
}

export function parseVaultText(text: string): VaultEnvelope {
  const lines = text.trim().split(/\r?\n/);
  const header = lines[0]!.trim().split(';');
  if (header[0] !== VAULT_HEADER.slice(0, -1) || header.length < 3) throw new VaultFormatError('the header is not $ANSIBLE_VAULT;VERSION;CIPHER');
  const [, version, cipher, vaultId] = header.map((p) => p.trim());
  if (version !== '1.1' && version !== '1.2') throw new VaultFormatError(`vault format ${version} is not supported (1.1 and 1.2 are)`);
  if (cipher !== 'AES256') throw new VaultFormatError(`cipher ${cipher} is not supported (AES256 is)`);
  const body = unhex(lines.slice(1).map((l) => l.trim()).join(''), 'the body').toString('latin1');
  const parts = body.split('\n');
  if (parts.length !== 3) throw new VaultFormatError('the body is not salt, HMAC and ciphertext');
  const [salt, hmac, ciphertext] = [unhex(parts[0]!, 'the salt'), unhex(parts[1]!, 'the HMAC'), unhex(parts[2]!, 'the ciphertext')];
  if (salt.length === 0 || hmac.length !== 32 || ciphertext.length === 0 || ciphertext.length % 16 !== 0) {
    throw new VaultFormatError('the salt, HMAC or ciphertext has the wrong length');
  }
  return { version: version!, cipher: cipher!, vaultId: vaultId || undefined, salt, hmac, ciphertext };
}

const KEY_LENGTH = 32;
const IV_LENGTH = 16;
const ITERATIONS = 10000;

/** The plaintext of a vault text; VaultPasswordError when the password is not the one it was made with. */
export function decryptVault(text: string, password: Buffer): Buffer {
  const v = parseVaultText(text);
  const derived = pbkdf2Sync(password, v.salt, ITERATIONS, 2 * KEY_LENGTH + IV_LENGTH, 'sha256');
  const key1 = derived.subarray(0, KEY_LENGTH);
  const key2 = derived.subarray(KEY_LENGTH, 2 * KEY_LENGTH);
  const iv = derived.subarray(2 * KEY_LENGTH);
  const expected = createHmac('sha256', key2).update(v.ciphertext).digest();
  if (!timingSafeEqual(expected, v.hmac)) throw new VaultPasswordError('HMAC mismatch');
  const decipher = createDecipheriv('aes-256-ctr', key1, iv);
  const padded = Buffer.concat([decipher.update(v.ciphertext), decipher.final()]);
  const pad = padded[padded.length - 1]!;
  if (pad < 1 || pad > 16 || padded.length < pad || !padded.subarray(padded.length - pad).every((b) => b === pad)) {
    throw new VaultFormatError('the padding is invalid');
  }
  return padded.subarray(0, padded.length - pad);
}
