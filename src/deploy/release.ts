import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError } from '../util/errors.js';

/**
 * A release of the team's application as the control machine has it: a directory or an archive
 * (.tar.gz, .tgz, .tar). Its id is its content hash, so the same code is the same release whatever
 * its path or the time it was packed, and a host that records the id has nothing to receive.
 */
export interface LocalRelease {
  id: string;
  source: string;
  kind: 'directory' | 'archive';
}

/** Hex digits of the sha256 kept in a release id: 80 bits, no collision among a team's releases. */
const ID_HEX = 20;
export const RELEASE_ID = /^[0-9a-f]{20}$/;

const ARCHIVE = /\.(tar\.gz|tgz|tar)$/;

/**
 * The content hash of a directory: every entry's relative path, type, executable bit and content (a
 * symlink: its target), in byte order of the paths. Owners and times are left out: they are not the code.
 */
export function directoryHash(dir: string): string {
  const h = createHash('sha256');
  const walk = (rel: string) => {
    const names = readdirSync(path.join(dir, rel)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const full = path.join(dir, r);
      const st = lstatSync(full);
      if (st.isSymbolicLink()) h.update(`l\0${r}\0${readlinkSync(full)}\0`);
      else if (st.isDirectory()) {
        h.update(`d\0${r}\0`);
        walk(r);
      } else if (st.isFile()) {
        const content = readFileSync(full);
        h.update(`f\0${r}\0${st.mode & 0o111 ? 'x' : '-'}\0${content.length}\0`);
        h.update(content);
      } else throw new InputError(`release ${dir}: ${r} is neither a file, a directory nor a symlink`);
    }
  };
  walk('');
  return h.digest('hex');
}

/** The release at PATH on the control machine (its id computed; nothing packed yet). */
export function localRelease(source: string): LocalRelease {
  const abs = path.resolve(source);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new InputError(`release ${source}: no such file or directory on the control machine`);
  }
  if (st.isDirectory()) return { id: directoryHash(abs).slice(0, ID_HEX), source: abs, kind: 'directory' };
  if (st.isFile() && ARCHIVE.test(abs)) {
    return { id: createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, ID_HEX), source: abs, kind: 'archive' };
  }
  throw new InputError(`release ${source}: neither a directory nor an archive (.tar.gz, .tgz, .tar)`);
}

/**
 * The release as one gzip'd tar stream, what travels on the SSH channel's stdin as bytes. A
 * directory is packed by GNU tar in a fixed order with numeric root ownership (the host owns its
 * copy as root; the app user only reads it).
 */
export function packRelease(r: LocalRelease): Buffer {
  if (r.kind === 'archive') {
    const bytes = readFileSync(r.source);
    return r.source.endsWith('.tar') ? gzipSync(bytes) : bytes;
  }
  return execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-czf', '-', '-C', r.source, '.'], {
    maxBuffer: 4 * 1024 * 1024 * 1024,
  });
}

/** One process packs a source once, however many hosts and tasks ship it. */
const packed = new Map<string, Buffer>();
export function packedRelease(r: LocalRelease): Buffer {
  const key = `${r.source}\0${r.id}`;
  let b = packed.get(key);
  if (!b) {
    b = packRelease(r);
    packed.set(key, b);
  }
  return b;
}
