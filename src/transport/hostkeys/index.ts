/** Host keys: known_hosts (OpenSSH's format and matching), host certificates, the per-connection check. */
export { HostKeyCheck, judgePlainKey, lookupHost, type HostKeyTarget, type HostLookup, type PlainVerdict } from './verifier.js';
export { entriesFor, hostPattern, parseKnownHosts, readKnownHosts, type HostEntries, type KnownHostsEntry, type KnownHostsFile, type UnreadableLine } from './known-hosts-file.js';
export { checkHostCertificate, parseCertificate, type Certificate, type CertificateVerdict } from './certificate.js';
export { fetchHostCertificate } from './cert-probe.js';
export { fingerprint, parsePublicKey } from './keys.js';
export { matchPattern, matchPatternList, hostFieldMatches, hashHostName } from './patterns.js';
