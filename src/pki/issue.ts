import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { Secret } from '../util/secrets.js';
import { PkiError } from './errors.js';
import { assertPrivateFile } from './layout.js';
import { DEFAULT_KEY_TYPE, generatePrivateKeyPem, type KeyType, KEY_TYPES, writePrivateFile } from './keys.js';
import { parseWantedNames, type SanSet } from './names.js';
import { checkOpensslVersion, withWorkDir } from './openssl.js';
import { BACKDATE_MS, signCertificate } from './sign.js';
import type { Ca } from './store.js';

/*
 * Leaf certificates: a host's certificate for its names and addresses.
 *
 * The leaf key is made here, on the control machine, for each issue, and goes to the host with its
 * certificate in the same write (the module ships both over SSH on stdin into 0600/0644 files and
 * renames them into place together). Not a CSR made on the host, because:
 * - the plan stays pure and check mode exact: "would issue (reason)" needs no command on the host,
 *   where a CSR would need a key generated on the host before anything is decided;
 * - one round trip to apply (key + certificate in one script), instead of generate-and-send-CSR,
 *   then send-certificate; and never a new key beside an old certificate if the run dies in between;
 * - no openssl needed on the hosts (MariaDB hosts have none by default);
 * - the control machine already holds the CA key, which can make any certificate: a leaf key
 *   passing through it (in memory, and for openssl's seconds in a 0600 file of the private work
 *   folder, removed at once) adds nothing an attacker of the control machine would not have.
 * A leaf whose certificate is still good is never touched: no key, no signature (decide.ts).
 */

export type LeafUsage = 'server' | 'client' | 'both';

export const DEFAULT_LEAF_VALIDITY_DAYS = 397;
const dayMs = 24 * 60 * 60 * 1000;

export interface LeafRequest {
  /** DNS names and IP addresses (v4/v6), in one list; the first is also the subject's CN (old clients read only that). */
  names: string[];
  /** serverAuth, clientAuth or both in the extended key usage; default server. */
  usage?: LeafUsage;
  /** Default 397 days (what public CAs may issue); never beyond the signing CA's own end. */
  validityDays?: number;
  keyType?: KeyType;
}

export interface IssuedLeaf {
  /** The leaf certificate alone: what a server presents (every peer has the CA in its bundle). */
  certPem: string;
  /** Its private key (PKCS#8): a Secret, masked in every output; to the host on stdin, into a 0600 file. */
  keyPem: Secret;
  /** The CA certificate that signed it. */
  caPem: string;
  /** certPem then caPem, for tools that want one file with the chain. */
  chainPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  names: SanSet;
  caId: string;
}

export const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

export function ekuFor(usage: LeafUsage): string[] {
  return usage === 'server' ? [EKU_SERVER] : usage === 'client' ? [EKU_CLIENT] : [EKU_SERVER, EKU_CLIENT];
}

/** The request, checked: names canonical, usage and validity known. Errors name the field. */
export function normalizeLeafRequest(req: LeafRequest): Required<Omit<LeafRequest, 'names'>> & { names: SanSet; commonName: string } {
  const names = parseWantedNames(req.names);
  const usage = req.usage ?? 'server';
  if (!['server', 'client', 'both'].includes(usage)) throw new PkiError(`usage "${String(usage)}": one of server, client, both`);
  const validityDays = req.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 825) throw new PkiError(`validityDays ${validityDays}: a whole number of days from 1 to 825`);
  const keyType = req.keyType ?? DEFAULT_KEY_TYPE;
  if (!KEY_TYPES.includes(keyType)) throw new PkiError(`keyType "${String(keyType)}": one of ${KEY_TYPES.join(', ')}`);
  // The CN is the first name as given, canonical (an address as the CA would write it).
  const first = parseWantedNames([req.names[0]!]);
  const commonName = first.dns[0] ?? first.ip[0]!;
  return { names, usage, validityDays, keyType, commonName };
}

/** Issue a leaf signed by the CA's current signer. Makes a new key each time. */
export async function issueLeaf(ca: Ca, request: LeafRequest, opts: { now?: Date } = {}): Promise<IssuedLeaf> {
  const req = normalizeLeafRequest(request);
  await checkOpensslVersion();
  const signer = ca.signer;
  assertPrivateFile(signer.keyFile, 'the current CA key');
  const now = opts.now ?? new Date();
  const caEnd = new Date(signer.cert.validTo);
  if (caEnd.getTime() <= now.getTime()) throw new PkiError(`the CA ${signer.id} expired on ${caEnd.toISOString()}`, 'rotate the CA (docs/pki.md)');
  const notAfter = new Date(Math.min(now.getTime() + req.validityDays * dayMs, caEnd.getTime()));
  const keyPem = await generatePrivateKeyPem(req.keyType);
  const altNames = [...req.names.dns.map((n, i) => `DNS.${i + 1} = ${n}`), ...req.names.ip.map((n, i) => `IP.${i + 1} = ${n}`)];
  // RSA keys may also be used for key transport (TLS 1.2 RSA key exchange of old clients); EC keys only sign.
  const keyUsage = req.keyType === 'rsa-3072' ? 'critical, digitalSignature, keyEncipherment' : 'critical, digitalSignature';
  const certPem = await withWorkDir(ca.dir, async (work) => {
    const keyFile = path.join(work, 'leaf.key');
    writePrivateFile(keyFile, keyPem);
    return signCertificate({
      workDir: work,
      subjectKeyFile: keyFile,
      subject: `/O=provision/CN=${req.commonName}`,
      issuer: { certFile: signer.certFile, keyFile: signer.keyFile },
      extensions: {
        lines: [
          'basicConstraints = critical, CA:FALSE',
          `keyUsage = ${keyUsage}`,
          `extendedKeyUsage = ${req.usage === 'server' ? 'serverAuth' : req.usage === 'client' ? 'clientAuth' : 'serverAuth, clientAuth'}`,
          'subjectKeyIdentifier = hash',
          'authorityKeyIdentifier = keyid:always',
        ],
        altNames,
      },
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
    });
  });
  const cert = new X509Certificate(certPem);
  return {
    certPem,
    keyPem: new Secret('pki leaf key', keyPem),
    caPem: signer.certPem,
    chainPem: certPem.trimEnd() + '\n' + signer.certPem.trimEnd() + '\n',
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    names: req.names,
    caId: signer.id,
  };
}
