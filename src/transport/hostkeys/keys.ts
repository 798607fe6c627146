/**
 * SSH public keys as blobs: which types we read, their structure, their fingerprints, the host-key
 * algorithms that negotiate them, and signature checks with node:crypto (for certificate authorities).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { WireError, WireReader, mpintMagnitude } from './wire.js';

export interface PublicKey {
  /** The key type named inside the blob (e.g. "ssh-ed25519", "ssh-rsa"). */
  type: string;
  /** The whole public key blob, as sent on the wire and stored base64 in known_hosts. */
  blob: Buffer;
}

interface EcdsaCurve {
  curve: string;
  jwkCurve: string;
  coordinateBytes: number;
  hash: string;
}
const ECDSA: Record<string, EcdsaCurve> = {
  'ecdsa-sha2-nistp256': { curve: 'nistp256', jwkCurve: 'P-256', coordinateBytes: 32, hash: 'sha256' },
  'ecdsa-sha2-nistp384': { curve: 'nistp384', jwkCurve: 'P-384', coordinateBytes: 48, hash: 'sha384' },
  'ecdsa-sha2-nistp521': { curve: 'nistp521', jwkCurve: 'P-521', coordinateBytes: 66, hash: 'sha512' },
};

/** Plain (non-certificate) key types OpenSSH writes into known_hosts. */
export const PLAIN_KEY_TYPES = [
  'ssh-ed25519',
  ...Object.keys(ECDSA),
  'ssh-rsa',
  'ssh-dss',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const;

/** OpenSSH refuses RSA keys below this size (SSH_RSA_MINIMUM_MODULUS_SIZE). */
const RSA_MIN_BITS = 1024;

/** Reads the fields after the type name of a plain key of `type`; throws WireError when malformed. */
export function readPlainKeyFields(r: WireReader, type: string): void {
  switch (type) {
    case 'ssh-ed25519':
      if (r.string('ed25519 key').length !== 32) throw new WireError('ed25519 key is not 32 bytes');
      return;
    case 'sk-ssh-ed25519@openssh.com':
      if (r.string('ed25519 key').length !== 32) throw new WireError('ed25519 key is not 32 bytes');
      r.text('application');
      return;
    case 'ssh-rsa': {
      mpintMagnitude(r.string('rsa e'), 'rsa e');
      const n = mpintMagnitude(r.string('rsa n'), 'rsa n');
      if (bitLength(n) < RSA_MIN_BITS) throw new WireError(`rsa key is shorter than ${RSA_MIN_BITS} bits`);
      return;
    }
    case 'ssh-dss':
      for (const part of ['p', 'q', 'g', 'y']) r.string(`dsa ${part}`);
      return;
    case 'sk-ecdsa-sha2-nistp256@openssh.com':
      readEcdsaPoint(r, ECDSA['ecdsa-sha2-nistp256']!);
      r.text('application');
      return;
    default: {
      const curve = ECDSA[type];
      if (!curve) throw new WireError(`unknown key type "${type}"`);
      readEcdsaPoint(r, curve);
    }
  }
}

function bitLength(magnitude: Buffer): number {
  if (!magnitude.length || magnitude[0] === 0) return 0;
  return (magnitude.length - 1) * 8 + magnitude[0]!.toString(2).length;
}

function readEcdsaPoint(r: WireReader, c: EcdsaCurve): Buffer {
  const curve = r.text('ecdsa curve');
  if (curve !== c.curve) throw new WireError(`ecdsa curve "${curve}" does not match the key type`);
  const q = r.string('ecdsa point');
  if (q.length !== 1 + 2 * c.coordinateBytes || q[0] !== 4) throw new WireError('ecdsa point is not an uncompressed point of its curve');
  return q;
}

/** Parses and checks a plain public key blob (exactly one key, nothing after it). */
export function parsePublicKey(blob: Buffer): PublicKey {
  const r = new WireReader(blob);
  const type = r.text('key type');
  readPlainKeyFields(r, type);
  if (!r.done) throw new WireError('bytes after the end of the key');
  return { type, blob };
}

/** SHA256:… as ssh-keygen -l prints it. */
export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The algorithms (ssh2's `serverHostKey` names) under which a server presents a key of `type`. */
export function hostKeyAlgorithmsFor(type: string): string[] {
  if (type === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256'];
  if (type === 'ssh-ed25519' || ECDSA[type]) return [type];
  return [];
}

/** Every host-key algorithm we let ssh2 negotiate, strongest first (no SHA-1 RSA, no DSA). */
export const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'];

/** Key types that may sign certificates here (OpenSSH's CA types, less DSA). */
export function canVerifySignatures(type: string): boolean {
  return type === 'ssh-ed25519' || type === 'ssh-rsa' || Boolean(ECDSA[type]);
}

function keyObject(key: PublicKey): KeyObject {
  const r = new WireReader(key.blob);
  r.text();
  if (key.type === 'ssh-ed25519') return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: r.string().toString('base64url') }, format: 'jwk' });
  if (key.type === 'ssh-rsa') {
    const e = mpintMagnitude(r.string(), 'rsa e');
    const n = mpintMagnitude(r.string(), 'rsa n');
    return createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  }
  const c = ECDSA[key.type];
  if (!c) throw new WireError(`${key.type} keys cannot sign certificates here`);
  const q = readEcdsaPoint(r, c);
  const x = q.subarray(1, 1 + c.coordinateBytes);
  const y = q.subarray(1 + c.coordinateBytes);
  return createPublicKey({ key: { kty: 'EC', crv: c.jwkCurve, x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' });
}

/**
 * Checks an SSH signature blob (string sig-type, string sig) by `key` over `data`. The signature
 * type must belong to the key (an ed25519 key signs "ssh-ed25519"…); RSA must be rsa-sha2-256/512,
 * as OpenSSH's default CASignatureAlgorithms (SHA-1 "ssh-rsa" signatures are refused).
 * Returns the signature type when valid; throws WireError saying why not.
 */
export function verifySignature(key: PublicKey, signature: Buffer, data: Buffer): string {
  const r = new WireReader(signature);
  const sigType = r.text('signature type');
  const sig = r.string('signature');
  if (!r.done) throw new WireError('bytes after the end of the signature');
  let ok: boolean;
  if (key.type === 'ssh-ed25519') {
    if (sigType !== 'ssh-ed25519') throw new WireError(`signature type ${sigType} does not belong to an ${key.type} key`);
    ok = verify(null, data, keyObject(key), sig);
  } else if (key.type === 'ssh-rsa') {
    const hash = sigType === 'rsa-sha2-512' ? 'sha512' : sigType === 'rsa-sha2-256' ? 'sha256' : undefined;
    if (!hash) throw new WireError(`signature type ${sigType} is not allowed for an RSA certificate authority (rsa-sha2-256/512 only)`);
    ok = verify(hash, data, keyObject(key), sig);
  } else {
    const c = ECDSA[key.type];
    if (!c) throw new WireError(`${key.type} keys cannot sign certificates here`);
    if (sigType !== key.type) throw new WireError(`signature type ${sigType} does not belong to an ${key.type} key`);
    const rs = new WireReader(sig);
    const rPart = mpintMagnitude(rs.string('ecdsa r'), 'ecdsa r');
    const sPart = mpintMagnitude(rs.string('ecdsa s'), 'ecdsa s');
    if (!rs.done || rPart.length > c.coordinateBytes || sPart.length > c.coordinateBytes) throw new WireError('malformed ecdsa signature');
    const p1363 = Buffer.concat([leftPad(rPart, c.coordinateBytes), leftPad(sPart, c.coordinateBytes)]);
    ok = verify(c.hash, data, { key: keyObject(key), dsaEncoding: 'ieee-p1363' }, p1363);
  }
  if (!ok) throw new WireError('signature does not verify');
  return sigType;
}

function leftPad(b: Buffer, n: number): Buffer {
  return b.length >= n ? b : Buffer.concat([Buffer.alloc(n - b.length), b]);
}
