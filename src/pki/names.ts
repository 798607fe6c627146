import { isIP } from 'node:net';
import { PkiError } from './errors.js';

/*
 * Subject alternative names: what a leaf certificate is for. A name is a DNS name or an IP
 * address (v4 or v6); callers pass one list (`[host.name, privateAddress]`), each entry is sorted
 * into its kind here. Names are compared in one canonical form so "10.0.0.1" and "WEB-01" never
 * look different from what the certificate says.
 */

export interface SanSet {
  dns: string[];
  ip: string[];
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** An IP address in canonical form (v6 compressed, lower case), or undefined if `value` is not one. */
export function canonicalIp(value: string): string | undefined {
  // isIP first: URL's parser would read "010.0.0.1" as octal; isIP refuses such forms.
  if (isIP(value) === 0) return undefined;
  const host = new URL(`http://${isIP(value) === 6 ? `[${value}]` : value}/`).hostname;
  return host.replace(/^\[|\]$/g, '');
}

/**
 * The wanted names, validated and canonical. A DNS name is lower-cased letters, digits and hyphens
 * in dot-separated labels (no wildcard: a certificate of ours names exactly its host); anything
 * else is refused here, which also keeps every value safe inside openssl's config file.
 */
export function parseWantedNames(names: readonly string[], where = 'names'): SanSet {
  const dns = new Set<string>();
  const ip = new Set<string>();
  for (const raw of names) {
    if (typeof raw !== 'string' || raw === '') throw new PkiError(`${where}: an empty name`);
    const address = canonicalIp(raw);
    if (address !== undefined) {
      ip.add(address);
      continue;
    }
    const name = raw.toLowerCase().replace(/\.$/, '');
    const labels = name.split('.');
    // A last label of digits only is no host name ("10.0.0.256" is a mistyped address, not a name).
    if (name.length > 253 || !labels.every((label) => LABEL.test(label)) || /^[0-9]+$/.test(labels.at(-1)!)) {
      throw new PkiError(`${where}: "${raw}" is neither an IP address nor a DNS name (letters, digits, hyphens, dots; no wildcard)`);
    }
    dns.add(name);
  }
  if (dns.size + ip.size === 0) throw new PkiError(`${where}: a certificate needs at least one name or address`);
  return { dns: [...dns].sort(), ip: [...ip].sort() };
}

/**
 * node's X509Certificate.subjectAltName ("DNS:a, IP Address:10.0.0.1, …") as canonical sets.
 * Since node 17.3.1 a value holding a comma or a quote is written as a JSON string, so a name such
 * as `a, DNS:b` cannot pass for two entries; other kinds (email, URI) are kept under `other`.
 */
export function parseCertificateSans(subjectAltName: string | undefined): SanSet & { other: string[] } {
  const out = { dns: new Set<string>(), ip: new Set<string>(), other: [] as string[] };
  let rest = subjectAltName ?? '';
  while (rest.length > 0) {
    const colon = rest.indexOf(':');
    if (colon < 0) throw new PkiError(`cannot read the certificate's subject alternative names near "${rest.slice(0, 40)}"`);
    const kind = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
    let value: string;
    if (rest.startsWith('"')) {
      const end = jsonStringEnd(rest);
      value = JSON.parse(rest.slice(0, end)) as string;
      rest = rest.slice(end);
    } else {
      const comma = rest.indexOf(', ');
      value = comma < 0 ? rest : rest.slice(0, comma);
      rest = comma < 0 ? '' : rest.slice(comma);
    }
    if (rest.startsWith(', ')) rest = rest.slice(2);
    else if (rest !== '') throw new PkiError(`cannot read the certificate's subject alternative names near "${rest.slice(0, 40)}"`);
    if (kind === 'DNS') out.dns.add(value.toLowerCase());
    else if (kind === 'IP Address') out.ip.add(canonicalIp(value) ?? value);
    else out.other.push(`${kind}:${value}`);
  }
  return { dns: [...out.dns].sort(), ip: [...out.ip].sort(), other: out.other };
}

/** Where a JSON string literal at the start of `s` ends (index after its closing quote). */
function jsonStringEnd(s: string): number {
  for (let i = 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '"') return i + 1;
  }
  throw new PkiError('cannot read the certificate\'s subject alternative names: an unclosed quoted value');
}

/** The names one set has that the other lacks, both ways; empty lists when they are equal. */
export function sanDifference(have: SanSet, want: SanSet): { missing: string[]; extra: string[] } {
  const all = (s: SanSet) => [...s.dns, ...s.ip];
  const haveAll = new Set(all(have));
  const wantAll = new Set(all(want));
  return { missing: [...wantAll].filter((n) => !haveAll.has(n)), extra: [...haveAll].filter((n) => !wantAll.has(n)) };
}
