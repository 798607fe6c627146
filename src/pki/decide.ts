import { createPublicKey, X509Certificate } from 'node:crypto';
import { ekuFor, type LeafUsage } from './issue.js';
import type { KeyType } from './keys.js';
import { parseCertificateSans, parseWantedNames, sanDifference } from './names.js';
import type { CaCert } from './store.js';

/*
 * The decision a module makes for a host's certificate, from what it read on the host: keep it, or
 * issue a new one and why. Pure (no disk, no clock, no process): `now` and the CA are inputs, so the
 * same inputs always give the same answer, and a converge on a valid certificate makes no key and
 * no signature. Check mode calls it exactly as a real run does.
 */

export const DEFAULT_RENEW_BEFORE_DAYS = 30;
const dayMs = 24 * 60 * 60 * 1000;

export type IssueCode =
  | 'missing' // no certificate on the host
  | 'unreadable' // not a PEM certificate
  | 'no-ca' // the CA does not exist yet (check mode before the first real run)
  | 'rotation' // signed by the CA a rotation is retiring
  | 'issuer' // not signed by the signing CA
  | 'not-yet-valid'
  | 'expired'
  | 'expiring' // within the renewal window
  | 'names' // its names and addresses are not the wanted ones
  | 'usage' // lacks serverAuth / clientAuth
  | 'key-type'
  | 'key'; // the key on the host is not the certificate's

export type LeafDecision =
  | { action: 'keep'; notAfter: Date; daysLeft: number; warning?: string }
  | { action: 'issue'; code: IssueCode; reason: string };

export interface LeafDecisionInput {
  /** The certificate on the host (its file's content), or null/undefined when there is none. */
  currentCertPem?: string | null;
  /** The public key of the host's key file (SPKI PEM), when the module can read it; a mismatch re-issues. */
  hostPublicKeyPem?: string;
  wanted: { names: string[]; usage?: LeafUsage; keyType?: KeyType };
  /** The loaded CA (signer and trusted certificates), or undefined if none exists yet. */
  ca: { signer: Pick<CaCert, 'id' | 'cert'>; trusted: Array<Pick<CaCert, 'id' | 'cert' | 'role'>> } | undefined;
  now: Date;
  /** Re-issue when the certificate ends within this many days; default 30. */
  renewBeforeDays?: number;
}

const issue = (code: IssueCode, reason: string): LeafDecision => ({ action: 'issue', code, reason });

function signedBy(leaf: X509Certificate, ca: X509Certificate): boolean {
  return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
}

function keyTypeOf(leaf: X509Certificate): KeyType | undefined {
  const k = leaf.publicKey;
  if (k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ec-p256';
  if (k.asymmetricKeyType === 'rsa' && k.asymmetricKeyDetails?.modulusLength === 3072) return 'rsa-3072';
  return undefined;
}

export function decideLeaf(input: LeafDecisionInput): LeafDecision {
  const { now, ca } = input;
  const renewBeforeMs = (input.renewBeforeDays ?? DEFAULT_RENEW_BEFORE_DAYS) * dayMs;
  const wantedNames = parseWantedNames(input.wanted.names);
  if (!input.currentCertPem || !input.currentCertPem.trim()) return issue('missing', 'no certificate on the host');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(input.currentCertPem);
  } catch {
    return issue('unreadable', 'the file on the host is not a certificate');
  }
  if (!ca) return issue('no-ca', 'the internal CA does not exist yet (the first real run makes it)');

  if (!signedBy(leaf, ca.signer.cert)) {
    const retiring = ca.trusted.find((c) => c.role === 'previous' && signedBy(leaf, c.cert));
    if (retiring) return issue('rotation', `signed by CA ${retiring.id}, which the rotation is retiring (now signing: ${ca.signer.id})`);
    return issue('issuer', `not signed by the internal CA ${ca.signer.id} (issuer: ${leaf.issuer.replace(/\n/g, ', ')})`);
  }
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (notBefore.getTime() > now.getTime()) return issue('not-yet-valid', `valid only from ${notBefore.toISOString()}`);
  if (notAfter.getTime() <= now.getTime()) return issue('expired', `expired on ${notAfter.toISOString()}`);

  const { missing, extra } = sanDifference(parseCertificateSans(leaf.subjectAltName), wantedNames);
  if (missing.length || extra.length) {
    return issue('names', [missing.length ? `lacks ${missing.join(', ')}` : '', extra.length ? `names ${extra.join(', ')} no longer wanted` : ''].filter(Boolean).join('; '));
  }
  const eku = leaf.keyUsage ?? [];
  const lacking = ekuFor(input.wanted.usage ?? 'server').filter((oid) => !eku.includes(oid));
  if (lacking.length) return issue('usage', `its extended key usage lacks ${lacking.map((o) => (o.endsWith('.1') ? 'serverAuth' : 'clientAuth')).join(' and ')}`);
  if (input.wanted.keyType && keyTypeOf(leaf) !== input.wanted.keyType) return issue('key-type', `its key is not ${input.wanted.keyType}`);
  if (input.hostPublicKeyPem !== undefined) {
    let same = false;
    try {
      same = createPublicKey(input.hostPublicKeyPem).export({ type: 'spki', format: 'der' }).equals(leaf.publicKey.export({ type: 'spki', format: 'der' }));
    } catch {
      same = false;
    }
    if (!same) return issue('key', 'the key file on the host does not belong to the certificate');
  }

  const msLeft = notAfter.getTime() - now.getTime();
  const daysLeft = Math.floor(msLeft / dayMs);
  if (msLeft <= renewBeforeMs) {
    // A new leaf can never outlive its CA: when the CA itself ends within the window, issuing again
    // would give the same end date on every run. Keep it, and say that the CA must be rotated.
    const caMsLeft = new Date(ca.signer.cert.validTo).getTime() - now.getTime();
    if (caMsLeft > renewBeforeMs) return issue('expiring', `ends on ${notAfter.toISOString()}, within ${input.renewBeforeDays ?? DEFAULT_RENEW_BEFORE_DAYS} days`);
    return { action: 'keep', notAfter, daysLeft, warning: `ends in ${daysLeft} days with the CA ${ca.signer.id} itself: rotate the CA (docs/pki.md)` };
  }
  return { action: 'keep', notAfter, daysLeft };
}
