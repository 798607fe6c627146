import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** One known_hosts entry relevant to a host. */
export interface KnownKey {
  type: string;
  key: string; // base64 of the public key blob
  revoked: boolean;
}

/** The name OpenSSH uses for a host in known_hosts: plain on port 22, "[addr]:port" otherwise. */
export function hostPattern(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

function hashedMatches(entry: string, name: string): boolean {
  // |1|salt|hash — HMAC-SHA1 of the name keyed by the salt.
  const [, , salt, hash] = entry.split('|');
  if (!salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$');
  return re.test(name);
}

function patternListMatches(list: string, name: string): boolean {
  let matched = false;
  for (const p of list.split(',')) {
    if (p.startsWith('|1|')) {
      if (hashedMatches(p, name)) matched = true;
    } else if (p.startsWith('!')) {
      if (globMatch(p.slice(1), name)) return false;
    } else if (globMatch(p, name)) matched = true;
  }
  return matched;
}

/** Keys recorded for a host (by the name OpenSSH would use). */
export function knownKeysFor(file: string, address: string, port: number): KnownKey[] {
  if (!existsSync(file)) return [];
  const name = hostPattern(address, port);
  const out: KnownKey[] = [];
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker = '';
    if (fields[0]?.startsWith('@')) marker = fields.shift()!;
    if (marker === '@cert-authority') continue;
    const [hosts, type, key] = fields;
    if (!hosts || !type || !key) continue;
    if (patternListMatches(hosts, name)) out.push({ type, key, revoked: marker === '@revoked' });
  }
  return out;
}

export function recordKnownKey(file: string, address: string, port: number, type: string, keyBase64: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const needsNewline = existsSync(file) && !readFileSync(file, 'utf8').endsWith('\n') && readFileSync(file, 'utf8').length > 0;
  appendFileSync(file, `${needsNewline ? '\n' : ''}${hostPattern(address, port)} ${type} ${keyBase64}\n`, { mode: 0o600 });
}

/** The key type inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOf(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('ascii');
}

export function fingerprint(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}
