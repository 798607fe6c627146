import { generateKeyPair } from 'node:crypto';
import { writeFileSync } from 'node:fs';

/*
 * Key types. ECDSA P-256 by default: every TLS peer of the site accepts it — HAProxy 2.6, nginx,
 * MariaDB 10.11 (server and libmariadb3) and MySQL 8 all link OpenSSL 3 on Debian 12 / Ubuntu, and
 * node's tls (mysql2) is OpenSSL too; the site's TLS 1.2 cipher lists (haproxy role) include the
 * ECDHE-ECDSA suites. Ed25519 is not used: TLS 1.2 peers and many clients outside OpenSSL refuse it.
 * RSA 3072 is there for a peer that only takes RSA (the common ground if in doubt).
 */
export type KeyType = 'ec-p256' | 'rsa-3072';
export const DEFAULT_KEY_TYPE: KeyType = 'ec-p256';
export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'rsa-3072'];

/** A new private key as PKCS#8 PEM, made in this process (never by a command whose argv shows it). */
export function generatePrivateKeyPem(type: KeyType): Promise<string> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, _pub: string, priv: string) => (err ? reject(err) : resolve(priv));
    const encoding = { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const;
    if (type === 'ec-p256') generateKeyPair('ec', { namedCurve: 'prime256v1', ...encoding }, done);
    else generateKeyPair('rsa', { modulusLength: 3072, ...encoding }, done);
  });
}

/** Write a private key (or anything secret) to a new file of mode 0600; never over an existing file. */
export function writePrivateFile(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
}
