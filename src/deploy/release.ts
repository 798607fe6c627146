import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { InputError, ProvisionError } from '../util/errors.js';

/**
 * A release of the team's application as the control machine has it: a directory or an archive
 * (.tar.gz, .tgz, .tar). Its id is its content hash, so the same code is the same release whatever
 * its path or the time it was packed, and a host that records the id has nothing to receive.
 */
export interface LocalRelease {
  id: string;
  source: string;
  kind: 'directory' | 'archive';
  /** What the user named, when `source` is a built copy of it (app_build_local). */
  label?: string;
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

/** app_build_local failed: said in one line, exit 1, before any host is touched. */
export class LocalBuildError extends ProvisionError {}

const built = new Map<string, LocalRelease>();

/**
 * `app_build_local`: the command run by sh on the control machine in a copy of the source (a
 * directory copied, an archive unpacked) in a temporary directory, never in the user's own tree;
 * the release is the built copy (its id: the hash of what the build left). Once per process for a
 * source and command; the copy is removed when the process exits.
 */
export function buildLocal(source: string, command: string): LocalRelease {
  const original = localRelease(source);
  const key = `${original.source}\0${original.id}\0${command}`;
  const done = built.get(key);
  if (done) return done;
  const tmp = mkdtempSync(path.join(tmpdir(), 'provision-build-'));
  process.once('exit', () => rmSync(tmp, { recursive: true, force: true }));
  const work = path.join(tmp, path.basename(original.source).replace(ARCHIVE, '') || 'release');
  if (original.kind === 'directory') cpSync(original.source, work, { recursive: true, verbatimSymlinks: true });
  else {
    mkdirSync(work);
    execFileSync('tar', ['-xf', original.source, '-C', work]);
  }
  const r = spawnSync('/bin/sh', ['-c', command], { cwd: work, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    const said = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-5).join(' | ');
    throw new LocalBuildError(`app_build_local "${command}" failed (${r.error ? r.error.message : r.signal ? `signal ${r.signal}` : `exit ${r.status}`}) in a copy of ${source}${said ? `: ${said.slice(-1000)}` : ''}: nothing deployed`);
  }
  const release = { ...localRelease(work), label: path.basename(original.source) };
  built.set(key, release);
  return release;
}
