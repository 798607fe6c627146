/*
 * provision's internal CA (docs/pki.md): one CA per inventory, kept on the control machine beside
 * the inventory, that issues the hosts' TLS certificates (HAProxy → nginx re-encryption, MariaDB /
 * MySQL replication and clients). The public surface a role or module uses:
 *
 *   const dir = pkiDirFor(inventory);
 *   const ca = check ? loadCa(dir) : await ensureCa(dir, { label: inventory.name });
 *   const d = decideLeaf({ currentCertPem, wanted: { names: [host.name, addr], usage: 'server' }, ca, now: new Date() });
 *   if (d.action === 'issue' && !check) { const leaf = await issueLeaf(ca!, { names: [...], usage: 'server' }); … }
 *   caBundle(ca)   // the CA file every peer trusts (ca-file, ssl_ca, MASTER_SSL_CA)
 */
export { PkiError } from './errors.js';
export { pkiDirFor, PKI_DIR_SUFFIX, type InventoryLocation } from './layout.js';
export { DEFAULT_KEY_TYPE, KEY_TYPES, type KeyType } from './keys.js';
export { parseWantedNames, parseCertificateSans, type SanSet } from './names.js';
export { ensureCa, loadCa, caBundle, DEFAULT_CA_VALIDITY_DAYS, type Ca, type CaCert, type CaOptions, type CaPhase, type CaRole } from './store.js';
export { startRotation, promoteRotation, finishRotation, abortRotation, type RotationResult, type RotationStep } from './rotation.js';
export { issueLeaf, normalizeLeafRequest, DEFAULT_LEAF_VALIDITY_DAYS, EKU_CLIENT, EKU_SERVER, type IssuedLeaf, type LeafRequest, type LeafUsage } from './issue.js';
export { decideLeaf, DEFAULT_RENEW_BEFORE_DAYS, type IssueCode, type LeafDecision, type LeafDecisionInput } from './decide.js';
export { certificateExpiry, expiresWithin, expiryMetricText, EXPIRY_METRIC, type CertificateExpiry } from './expiry.js';
