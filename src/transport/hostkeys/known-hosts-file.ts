/**
 * known_hosts as OpenSSH reads it (hostfile.c): one entry a line, `[@marker] hosts keytype base64
 * [comment]`, comments and blank lines skipped. Every line is parsed on its own: a line we cannot
 * read becomes an UnreadableLine with file:line and the reason, never an exception, so one bad line
 * cannot take the other entries (and the hosts they name) down with it.
 */
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { PLAIN_KEY_TYPES, parsePublicKey, type PublicKey } from './keys.js';
import { hostFieldMatches } from './patterns.js';
import { WireError } from './wire.js';

export type Marker = 'none' | 'revoked' | 'cert-authority';

export interface KnownHostsEntry {
  file: string;
  /** 1-based line number. */
  line: number;
  marker: Marker;
  /** The host field as written: a pattern list or one hashed name. */
  hosts: string;
  key: PublicKey;
}

export interface UnreadableLine {
  file: string;
  line: number;
  reason: string;
  /** The host field, when the line got that far: it tells whether the line concerns a given host. */
  hosts?: string;
}

export interface KnownHostsFile {
  file: string;
  entries: KnownHostsEntry[];
  unreadable: UnreadableLine[];
}

/** The name OpenSSH looks a host up by: the address on port 22, "[address]:port" on any other. */
export function hostPattern(address: string, port: number): string {
  const lower = address.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return port === 22 ? lower : `[${lower}]:${port}`;
}

const MARKERS: Record<string, Marker> = { '@cert-authority': 'cert-authority', '@revoked': 'revoked' };
const CERT_SUFFIX = '-cert-v01@openssh.com';

/** Splits off the next token (up to a space or tab) and the text after the whitespace that follows it. */
function token(s: string): [string, string] {
  const m = /^([^ \t]*)[ \t]*(.*)$/s.exec(s)!;
  return [m[1]!, m[2]!];
}

function parseLine(text: string, file: string, line: number): KnownHostsEntry | UnreadableLine | undefined {
  let rest = text.replace(/\r$/, '').replace(/^[ \t]+/, '');
  if (!rest || rest.startsWith('#')) return undefined;
  const bad = (reason: string, hosts?: string): UnreadableLine => ({ file, line, reason, hosts });

  let marker: Marker = 'none';
  if (rest.startsWith('@')) {
    const [word, after] = token(rest);
    const known = MARKERS[word];
    if (!known) return bad(`unknown marker "${word.slice(0, 32)}" (only @cert-authority and @revoked exist)`, token(after)[0] || undefined);
    if (after.startsWith('@')) return bad('more than one marker', undefined);
    marker = known;
    rest = after;
  }
  const [hosts, afterHosts] = token(rest);
  if (!hosts) return bad('no host names after the marker');
  if (!afterHosts || afterHosts.startsWith('#')) return bad('no key after the host names', hosts);
  const [type, afterType] = token(afterHosts);
  const [base64] = token(afterType);
  if (/^\d+$/.test(type)) return bad('an SSH-1 RSA key (not supported)', hosts);
  if (type.endsWith(CERT_SUFFIX)) return bad(`a certificate (${type}) is not a known_hosts key: list its CA's key with @cert-authority`, hosts);
  if (!(PLAIN_KEY_TYPES as readonly string[]).includes(type)) return bad(`unknown key type "${type.slice(0, 40)}"`, hosts);
  if (!base64 || base64.startsWith('#')) return bad(`no key data after "${type}"`, hosts);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) return bad(`the ${type} key is not valid base64`, hosts);
  let key: PublicKey;
  try {
    key = parsePublicKey(Buffer.from(base64, 'base64'));
  } catch (err) {
    if (err instanceof WireError) return bad(`the ${type} key cannot be read: ${err.message}`, hosts);
    throw err;
  }
  if (key.type !== type) return bad(`the line says ${type} but the key is ${key.type}`, hosts);
  return { file, line, marker, hosts, key };
}

export function parseKnownHosts(text: string, file: string): KnownHostsFile {
  const out: KnownHostsFile = { file, entries: [], unreadable: [] };
  text.split('\n').forEach((raw, i) => {
    const parsed = parseLine(raw, file, i + 1);
    if (!parsed) return;
    if ('key' in parsed) out.entries.push(parsed);
    else out.unreadable.push(parsed);
  });
  return out;
}

export class KnownHostsReadError extends Error {}

/**
 * A file's parse, kept with the text it was made from. Every connect reads known_hosts; a fleet's
 * file has a line per host, so parsing it again per connect made a run's host-key work grow with the
 * square of its hosts (README "Speed", #18). The file is still read each time (cheap) and parsed
 * again whenever its text differs (an appended host, any edit): a stat's times are too coarse to tell.
 */
const parsedFiles = new Map<string, { text: string; known: Readonly<KnownHostsFile> }>();

/** Reads and parses a known_hosts file, parsing it once while its text is unchanged (treat the result as read-only); a missing file is an empty one. */
export function readKnownHosts(file: string): KnownHostsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { file, entries: [], unreadable: [] };
    throw new KnownHostsReadError(`cannot read known_hosts file ${file}: ${code ?? (err as Error).message}`);
  }
  const kept = parsedFiles.get(file);
  if (kept?.text === text) return kept.known;
  const known = parseKnownHosts(text, file);
  parsedFiles.set(file, { text, known });
  return known;
}

/** What known_hosts says about one name. */
export interface HostEntries {
  name: string;
  plain: KnownHostsEntry[];
  revoked: KnownHostsEntry[];
  authorities: KnownHostsEntry[];
  /** Unreadable lines whose host field names this host. */
  unreadableForHost: UnreadableLine[];
  /** Unreadable lines whose host field itself cannot be read (a broken hash): they may name any host. */
  unreadableAnyHost: UnreadableLine[];
}

export function entriesFor(known: KnownHostsFile, name: string): HostEntries {
  const out: HostEntries = { name, plain: [], revoked: [], authorities: [], unreadableForHost: [], unreadableAnyHost: [] };
  for (const e of known.entries) {
    const matches = hostFieldMatches(name, e.hosts);
    if (matches === undefined) out.unreadableAnyHost.push({ file: e.file, line: e.line, reason: 'its hashed host name cannot be read', hosts: e.hosts });
    else if (matches) (e.marker === 'none' ? out.plain : e.marker === 'revoked' ? out.revoked : out.authorities).push(e);
  }
  for (const u of known.unreadable) {
    const matches = u.hosts === undefined ? undefined : hostFieldMatches(name, u.hosts);
    if (matches === undefined) out.unreadableAnyHost.push(u);
    else if (matches) out.unreadableForHost.push(u);
  }
  return out;
}

/** "file:line" for messages. */
export function where(x: { file: string; line: number }): string {
  return `${x.file}:${x.line}`;
}

/**
 * Appends `name keytype base64` (OpenSSH's form for a recorded host). The file is created 0600
 * (its directory 0700) and a missing final newline of the existing text is supplied first.
 */
export function appendKnownHost(file: string, name: string, key: PublicKey): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = openSync(file, 'a+', 0o600);
  try {
    const size = fstatSync(fd).size;
    const last = Buffer.alloc(1);
    const needsNewline = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
    appendFileSync(fd, `${needsNewline ? '\n' : ''}${name} ${key.type} ${key.blob.toString('base64')}\n`);
  } finally {
    closeSync(fd);
  }
}
