import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { copy } from '../../modules/tasks.js';
import { InputError } from '../../util/errors.js';

/** What the Node.js runtime from an apt repository needs of the app role's vars. */
export interface NodejsVars {
  app_nodejs_source: 'debian' | 'nodesource';
  app_nodejs_major: number;
  app_nodejs_repository: string;
  app_nodejs_key_file: string;
  app_nodejs_key_fingerprint: string;
}

export const NODEJS_KEYRING = '/etc/apt/keyrings/provision-nodejs.asc';
export const NODEJS_SOURCES = '/etc/apt/sources.list.d/provision-nodejs.sources';
export const NODEJS_PIN = '/etc/apt/preferences.d/provision-nodejs';

export const nodejsRepositoryUrl = (v: NodejsVars) => v.app_nodejs_repository || `https://deb.nodesource.com/node_${v.app_nodejs_major}.x`;

const ARMOR = /-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n([\s\S]*?)\r?\n-----END PGP PUBLIC KEY BLOCK-----/;

/** The bytes of an OpenPGP key file, armored or binary. */
export function dearmor(file: Buffer): Buffer {
  const m = ARMOR.exec(file.toString('latin1'));
  if (!m) return file;
  // Headers end at the first empty line; the checksum line starts with "=".
  const body = m[1]!.split(/\r?\n\r?\n/).at(-1)!;
  const b64 = body
    .split(/\r?\n/)
    .filter((l) => !l.startsWith('='))
    .join('');
  return Buffer.from(b64, 'base64');
}

/** CRC-24 of RFC 4880 6.1 (the armor checksum). */
function crc24(bytes: Buffer): number {
  let crc = 0xb704ce;
  for (const b of bytes) {
    crc ^= b << 16;
    for (let i = 0; i < 8; i++) {
      crc <<= 1;
      if (crc & 0x1000000) crc ^= 0x1864cfb;
    }
  }
  return crc & 0xffffff;
}

/** The key as an armored block: what apt reads from a Signed-By file ending in .asc, and what a text file module writes. */
export function armor(bytes: Buffer): string {
  const lines = bytes.toString('base64').match(/.{1,64}/g) ?? [];
  const sum = Buffer.from([(crc24(bytes) >> 16) & 0xff, (crc24(bytes) >> 8) & 0xff, crc24(bytes) & 0xff]).toString('base64');
  return ['-----BEGIN PGP PUBLIC KEY BLOCK-----', '', ...lines, `=${sum}`, '-----END PGP PUBLIC KEY BLOCK-----', ''].join('\n');
}

/**
 * The fingerprints of the primary keys (public-key packets, tag 6) in an OpenPGP key file
 * (RFC 4880 4.2, 12.2: v4 = SHA-1 of 0x99, the two-byte length and the packet body). A secret key,
 * a version other than 4 or a packet we cannot read is refused: we only trust what we can check.
 */
export function primaryFingerprints(bytes: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < bytes.length) {
    const h = bytes[i]!;
    if (!(h & 0x80)) throw new InputError('not an OpenPGP key (a packet header is expected)');
    let tag: number;
    let len: number;
    let at: number;
    if (h & 0x40) {
      tag = h & 0x3f;
      const o1 = bytes[i + 1]!;
      if (o1 < 192) [len, at] = [o1, i + 2];
      else if (o1 < 224) [len, at] = [((o1 - 192) << 8) + bytes[i + 2]! + 192, i + 3];
      else if (o1 === 255) [len, at] = [bytes.readUInt32BE(i + 2), i + 6];
      else throw new InputError('an OpenPGP packet of partial length (not a key file)');
    } else {
      tag = (h >> 2) & 0x0f;
      const lt = h & 3;
      if (lt === 0) [len, at] = [bytes[i + 1]!, i + 2];
      else if (lt === 1) [len, at] = [bytes.readUInt16BE(i + 1), i + 3];
      else if (lt === 2) [len, at] = [bytes.readUInt32BE(i + 1), i + 5];
      else throw new InputError('an OpenPGP packet of indeterminate length (not a key file)');
    }
    if (at + len > bytes.length || Number.isNaN(len)) throw new InputError('a truncated OpenPGP key');
    const body = bytes.subarray(at, at + len);
    if (tag === 5 || tag === 7) throw new InputError('a secret key, not a public one');
    if (tag === 6) {
      if (body[0] !== 4) throw new InputError(`an OpenPGP v${body[0]} key: only v4 keys are checked`);
      const head = Buffer.from([0x99, (len >> 8) & 0xff, len & 0xff]);
      out.push(createHash('sha1').update(head).update(body).digest('hex').toUpperCase());
    }
    i = at + len;
  }
  return out;
}

export const normalFingerprint = (f: string) => f.replace(/\s+/g, '').toUpperCase();

/**
 * The repository's signing key, read on the control machine and trusted only when it holds exactly
 * one primary key and that key has the pinned fingerprint; else bad input before any host gets a
 * file. Returns the key armored (apt reads a `.asc` keyring).
 */
export function verifiedNodejsKey(v: NodejsVars): string {
  const file = path.resolve(v.app_nodejs_key_file);
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch {
    throw new InputError(`app_nodejs_key_file: ${v.app_nodejs_key_file}: no such file on the control machine`);
  }
  let prints: string[];
  try {
    prints = primaryFingerprints(dearmor(raw));
  } catch (err) {
    throw new InputError(`app_nodejs_key_file: ${v.app_nodejs_key_file}: ${(err as Error).message}`);
  }
  const want = normalFingerprint(v.app_nodejs_key_fingerprint);
  if (prints.length !== 1) throw new InputError(`app_nodejs_key_file: ${v.app_nodejs_key_file} holds ${prints.length} primary keys (${prints.join(', ') || 'none'}): exactly one is trusted, nothing written`);
  if (prints[0] !== want) {
    throw new InputError(`app_nodejs_key_file: ${v.app_nodejs_key_file} has fingerprint ${prints[0]}, not ${want} (app_nodejs_key_fingerprint): not trusted, nothing written`);
  }
  return armor(dearmor(raw));
}

/** The deb822 source: the repository of the major, trusted for this keyring only (Signed-By), never for the others. */
export function nodejsSources(v: NodejsVars): string {
  return ['# Managed by provision (role app): Node.js from an apt repository.', 'Types: deb', `URIs: ${nodejsRepositoryUrl(v)}`, 'Suites: nodistro', 'Components: main', `Signed-By: ${NODEJS_KEYRING}`, ''].join('\n');
}

/** apt prefers the declared major over any other nodejs (Debian's included). */
export function nodejsPin(v: NodejsVars): string {
  return ['# Managed by provision (role app): the Node.js major the app declares.', 'Package: nodejs', `Pin: version ${v.app_nodejs_major}.*`, 'Pin-Priority: 1001', ''].join('\n');
}

/**
 * The tasks before the runtime is installed (none for Debian's nodejs): the verified keyring first,
 * then the pin and the source that names it. The key is checked when the tasks are made, on the
 * control machine: a mismatch stops the run before any of these files is written.
 */
export function nodejsRepositoryTasks(v: NodejsVars) {
  if (v.app_nodejs_source !== 'nodesource') return [];
  const key = verifiedNodejsKey(v);
  return [
    copy(`Node.js repository key ${normalFingerprint(v.app_nodejs_key_fingerprint)}`, { dest: NODEJS_KEYRING, content: key, mode: '0644', make_parents: true }),
    copy(`apt pin: nodejs ${v.app_nodejs_major}.*`, { dest: NODEJS_PIN, content: nodejsPin(v), mode: '0644' }),
    copy(`apt source ${nodejsRepositoryUrl(v)}`, { dest: NODEJS_SOURCES, content: nodejsSources(v), mode: '0644' }),
  ];
}
