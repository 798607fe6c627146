/**
 * OpenSSH host certificates (PROTOCOL.certkeys): parsing the *-cert-v01@openssh.com blob and the
 * checks ssh(1) makes before it trusts one (sshconnect.c check_host_key, sshkey.c
 * sshkey_cert_check_host), plus one of our own: a certificate must list the name we connect to
 * (OpenSSH lets a certificate without principals stand for every host).
 */
import { fingerprint, parsePublicKey, readPlainKeyFields, verifySignature, type PublicKey } from './keys.js';
import { where, type KnownHostsEntry } from './known-hosts-file.js';
import { WireError, WireReader, WireWriter } from './wire.js';

const CERT_SUFFIX = '-cert-v01@openssh.com';
const CERT_TYPE_USER = 1;
const CERT_TYPE_HOST = 2;

export interface Certificate {
  /** The certificate's own type name, e.g. "ssh-ed25519-cert-v01@openssh.com". */
  type: string;
  /** The certified plain key, as a plain key blob: what the server must prove it holds. */
  key: PublicKey;
  serial: bigint;
  /** 1 user, 2 host. */
  certType: number;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch; validBefore 2^64-1 is "forever". */
  validAfter: bigint;
  validBefore: bigint;
  criticalOptions: string[];
  extensions: string[];
  signatureKey: PublicKey;
  signature: Buffer;
  /** The bytes the CA signed: the whole blob up to the signature field. */
  signedData: Buffer;
}

/** The certificate type names (for KEXINIT) of the plain host-key types we can use. */
export const CERT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519-cert-v01@openssh.com',
  'ecdsa-sha2-nistp256-cert-v01@openssh.com',
  'ecdsa-sha2-nistp384-cert-v01@openssh.com',
  'ecdsa-sha2-nistp521-cert-v01@openssh.com',
  'rsa-sha2-512-cert-v01@openssh.com',
  'rsa-sha2-256-cert-v01@openssh.com',
];

/** The plain key type a certificate type certifies ("ssh-rsa-cert-v01@openssh.com" → "ssh-rsa"). */
export function plainTypeOfCertificate(certType: string): string | undefined {
  return certType.endsWith(CERT_SUFFIX) ? certType.slice(0, -CERT_SUFFIX.length) : undefined;
}

function nameList(packed: Buffer, what: string): string[] {
  const r = new WireReader(packed);
  const out: string[] = [];
  while (!r.done) out.push(r.text(what));
  return out;
}

/** Option names of the critical options or extensions section (name, data pairs). */
function optionNames(packed: Buffer, what: string): string[] {
  const r = new WireReader(packed);
  const out: string[] = [];
  while (!r.done) {
    out.push(r.text(`${what} name`));
    r.string(`${what} data`);
  }
  return out;
}

/** Parses a certificate blob; throws WireError when it is not a well-formed OpenSSH certificate. */
export function parseCertificate(blob: Buffer): Certificate {
  const r = new WireReader(blob);
  const type = r.text('certificate type');
  const plainType = plainTypeOfCertificate(type);
  if (!plainType) throw new WireError(`${type} is not a certificate type`);
  r.string('nonce');
  const keyStart = r.offset;
  readPlainKeyFields(r, plainType);
  const key = parsePublicKey(new WireWriter().string(plainType).raw(blob.subarray(keyStart, r.offset)).toBuffer());
  const serial = r.uint64('serial');
  const certType = r.uint32('certificate role');
  const keyId = r.string('key id').toString('utf8');
  const principals = nameList(r.string('principals'), 'principal');
  const validAfter = r.uint64('valid after');
  const validBefore = r.uint64('valid before');
  const criticalOptions = optionNames(r.string('critical options'), 'critical option');
  const extensions = optionNames(r.string('extensions'), 'extension');
  r.string('reserved');
  const caBlob = r.string('signature key');
  const signedData = blob.subarray(0, r.offset);
  const signature = r.string('signature');
  if (!r.done) throw new WireError('bytes after the certificate signature');
  if (certType !== CERT_TYPE_USER && certType !== CERT_TYPE_HOST) throw new WireError(`unknown certificate role ${certType}`);
  let signatureKey: PublicKey;
  try {
    signatureKey = parsePublicKey(caBlob);
  } catch (err) {
    throw new WireError(`its CA key cannot be read (${(err as Error).message})`);
  }
  return { type, key, serial, certType, keyId, principals, validAfter, validBefore, criticalOptions, extensions, signatureKey, signature, signedData };
}

const FOREVER = 0xffffffffffffffffn;

function when(seconds: bigint): string {
  if (seconds >= FOREVER) return 'forever';
  const ms = Number(seconds) * 1000;
  return Number.isFinite(ms) && ms < 8.64e15 ? new Date(ms).toISOString() : `${seconds}s after 1970`;
}

export type CertificateVerdict = { ok: true; authority: KnownHostsEntry } | { ok: false; reason: string };

export interface CertificateContext {
  /** The name provision connects to (the host's address, lower case): a principal must equal it. */
  principal: string;
  /** @cert-authority entries whose host patterns match the host's known_hosts name. */
  authorities: KnownHostsEntry[];
  /** @revoked entries whose host patterns match it. */
  revoked: KnownHostsEntry[];
  now: Date;
}

/** Whether a parsed certificate vouches for this host now; the reason when it does not. */
export function checkHostCertificate(cert: Certificate, ctx: CertificateContext): CertificateVerdict {
  const ca = `CA ${cert.signatureKey.type} ${fingerprint(cert.signatureKey.blob)}`;
  const id = `certificate "${cert.keyId}" (serial ${cert.serial})`;
  const authority = ctx.authorities.find((a) => a.key.blob.equals(cert.signatureKey.blob));
  if (!authority) {
    const listed = ctx.authorities.map(where).join(', ');
    return { ok: false, reason: `${id} is signed by ${ca}, which is not a @cert-authority for this host (those are at ${listed})` };
  }
  for (const r of ctx.revoked) {
    if (r.key.blob.equals(cert.signatureKey.blob)) return { ok: false, reason: `${id} is signed by ${ca}, which is @revoked at ${where(r)}` };
    if (r.key.blob.equals(cert.key.blob)) return { ok: false, reason: `the key of ${id}, ${cert.key.type} ${fingerprint(cert.key.blob)}, is @revoked at ${where(r)}` };
  }
  try {
    verifySignature(cert.signatureKey, cert.signature, cert.signedData);
  } catch (err) {
    return { ok: false, reason: `${id}: its signature by ${ca} is not valid (${(err as Error).message})` };
  }
  if (cert.certType !== CERT_TYPE_HOST) return { ok: false, reason: `${id} is a user certificate, not a host certificate` };
  const now = BigInt(Math.floor(ctx.now.getTime() / 1000));
  if (now < cert.validAfter) return { ok: false, reason: `${id} is not valid before ${when(cert.validAfter)}` };
  if (now >= cert.validBefore) return { ok: false, reason: `${id} expired at ${when(cert.validBefore)}` };
  if (!cert.principals.length) return { ok: false, reason: `${id} lists no principals; provision requires the host's name among them` };
  if (!cert.principals.includes(ctx.principal)) {
    return { ok: false, reason: `${id} is for ${cert.principals.map((p) => JSON.stringify(p)).join(', ')}, not for "${ctx.principal}"` };
  }
  if (cert.criticalOptions.length) return { ok: false, reason: `${id} has critical options (${cert.criticalOptions.join(', ')}), which no host certificate may carry` };
  return { ok: true, authority };
}
