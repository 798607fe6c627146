import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { PkiError } from './errors.js';
import { caDir } from './layout.js';
import { DEFAULT_LOCK_TIMEOUT_MS, withCaLock } from './lock.js';
import { type Ca, type CaOptions, type CaPhase, loadCa, makeCaFolder, phaseOf, prepareDir, publishState, readState, type StateFile } from './store.js';

/*
 * Rotation of the CA, one step per call, a converge between steps (docs/pki.md):
 *
 *   stable ──start──▶ staged ──promote──▶ promoted ──finish──▶ stable
 *            (new CA made; bundle   (new CA signs; a converge     (old CA dropped from
 *             = old + new; a         re-issues every leaf: they     the bundle; a converge
 *             converge spreads it)   are "not from the signer")     spreads it)
 *
 * Every peer trusts the new CA before any leaf is signed by it, and still trusts the old one until
 * every leaf is re-issued, so no handshake fails at any point if each step waits for a converge
 * that reached every host. `abort` is one step back (staged → stable drops the new CA; promoted →
 * staged makes the old CA sign again).
 */

export type RotationStep = 'start' | 'promote' | 'finish' | 'abort';

export interface RotationResult {
  step: RotationStep;
  from: CaPhase;
  to: CaPhase;
  ca: Ca;
  /** What the operator does next, in one sentence. */
  next: string;
}

const NEXT_ACTION: Record<CaPhase, string> = {
  staged: 'converge every host (each peer now trusts both CAs), then promote the new CA',
  promoted: 'converge every host (every certificate is re-issued by the new CA), then finish the rotation',
  stable: 'converge every host (the bundle now holds the signing CA only)',
};

async function step(pkiDir: string, name: RotationStep, allowed: CaPhase[], move: (s: StateFile) => Promise<StateFile> | StateFile, lockTimeoutMs?: number): Promise<RotationResult> {
  const dir = path.resolve(pkiDir);
  return withCaLock(
    dir,
    async () => {
      const read = readState(dir);
      if (!read) throw new PkiError(`${dir} holds no CA yet: a rotation needs one (the first real run makes it)`);
      loadCa(dir); // every key checked before anything moves
      const from = phaseOf(read.state);
      if (!allowed.includes(from)) {
        throw new PkiError(`cannot ${name} a rotation of the CA in ${dir}: it is ${from} (${name} needs ${allowed.join(' or ')})`);
      }
      const state = await move(read.state);
      if (!publishState(dir, state, read.raw)) throw new PkiError(`${path.join(dir, 'state.json')} changed during the ${name}; nothing was done, run it again`);
      const to = phaseOf(state);
      return { step: name, from, to, ca: loadCa(dir)!, next: NEXT_ACTION[to] };
    },
    lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
  );
}

/** Step 1: a new CA, trusted beside the current one; the current one still signs. */
export async function startRotation(pkiDir: string, opts: CaOptions = {}): Promise<RotationResult> {
  const dir = path.resolve(pkiDir);
  prepareDir(dir);
  let made: string | undefined;
  try {
    return await step(dir, 'start', ['stable'], async (s) => ({ version: 1, current: s.current, next: (made = await makeCaFolder(dir, opts)) }), opts.lockTimeoutMs);
  } catch (err) {
    // A CA that no state names would be a stray key: gone with the failed step.
    if (made) rmSync(caDir(dir, made), { recursive: true, force: true });
    throw err;
  }
}

/** Step 2: the new CA signs; the old one stays trusted (previous). */
export function promoteRotation(pkiDir: string, opts: { lockTimeoutMs?: number } = {}): Promise<RotationResult> {
  return step(pkiDir, 'promote', ['staged'], (s) => ({ version: 1, current: s.next!, previous: s.current }), opts.lockTimeoutMs);
}

/**
 * Step 3: the old CA is no longer trusted; its folder (key included) is deleted (backups keep it).
 * `leaves`: the certificates the hosts hold now (PEM), when the caller has them (a check run):
 * finishing is refused while any of them is still signed by the old CA, since its host would be cut off.
 */
export async function finishRotation(pkiDir: string, opts: { leaves?: Array<{ host: string; certPem: string }>; lockTimeoutMs?: number } = {}): Promise<RotationResult> {
  const dir = path.resolve(pkiDir);
  let retired: string | undefined;
  const result = await step(
    dir,
    'finish',
    ['promoted'],
    (s) => {
      const old = loadCa(dir)!.trusted.find((c) => c.role === 'previous')!;
      const stale = (opts.leaves ?? []).filter((l) => {
        try {
          return new X509Certificate(l.certPem).verify(old.cert.publicKey);
        } catch {
          return false;
        }
      });
      if (stale.length) {
        throw new PkiError(`cannot finish the rotation: ${stale.map((l) => l.host).join(', ')} still hold a certificate of the old CA ${old.id}`, 'converge them first');
      }
      retired = s.previous;
      return { version: 1, current: s.current };
    },
    opts.lockTimeoutMs,
  );
  if (retired) rmSync(caDir(dir, retired), { recursive: true, force: true });
  return result;
}

/** One step back: staged → stable (the new CA is deleted), promoted → staged (the old CA signs again). */
export async function abortRotation(pkiDir: string, opts: { lockTimeoutMs?: number } = {}): Promise<RotationResult> {
  const dir = path.resolve(pkiDir);
  let dropped: string | undefined;
  const result = await step(
    dir,
    'abort',
    ['staged', 'promoted'],
    (s): StateFile => {
      if (s.next) {
        dropped = s.next;
        return { version: 1, current: s.current };
      }
      return { version: 1, current: s.previous!, next: s.current };
    },
    opts.lockTimeoutMs,
  );
  if (dropped) rmSync(caDir(dir, dropped), { recursive: true, force: true });
  return result;
}
