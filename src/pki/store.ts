import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PkiError } from './errors.js';
import { DEFAULT_KEY_TYPE, generatePrivateKeyPem, type KeyType, KEY_TYPES, writePrivateFile } from './keys.js';
import {
  assertPrivateDir,
  assertPrivateFile,
  caCertFile,
  caDir,
  caKeyFile,
  CAS_DIR,
  CERT_FILE,
  KEY_FILE,
  README_TEXT,
  SELF_IGNORE,
  STATE_FILE,
} from './layout.js';
import { DEFAULT_LOCK_TIMEOUT_MS, withCaLock } from './lock.js';
import { checkOpensslVersion, withWorkDir } from './openssl.js';
import { BACKDATE_MS, signCertificate } from './sign.js';

/*
 * The CA store: which CA certificates exist, which one signs, which ones are trusted.
 *
 * state.json names CAs by id (folders under ca/), in at most three roles:
 *   current   signs every new leaf; always trusted
 *   next      during a rotation's first step: made and trusted, does not sign yet
 *   previous  during its second step: no longer signs, still trusted until every leaf is re-issued
 * A change of roles is one atomic replacement of state.json, so a run killed half-way leaves the
 * old state or the new one, never a mixture (rotation.ts moves the roles).
 */

export const DEFAULT_CA_VALIDITY_DAYS = 3650;

export type CaRole = 'current' | 'next' | 'previous';
/** Where a rotation stands: no rotation, new CA trusted but not signing, new CA signing and old still trusted. */
export type CaPhase = 'stable' | 'staged' | 'promoted';

export interface CaCert {
  id: string;
  role: CaRole;
  certPem: string;
  cert: X509Certificate;
  certFile: string;
  keyFile: string;
  keyType: KeyType;
}

/** A loaded CA folder. Plain data: the decision function and tests can hold one without touching disk. */
export interface Ca {
  dir: string;
  phase: CaPhase;
  /** The CA that signs new leaves (role current). */
  signer: CaCert;
  /** Every CA a peer must trust now: the signer first, then the next or previous one during a rotation. */
  trusted: CaCert[];
}

export interface StateFile {
  version: 1;
  current: string;
  next?: string;
  previous?: string;
}

const ID = /^[0-9]{8}-[0-9a-f]{8}$/;

export function phaseOf(state: StateFile): CaPhase {
  return state.next ? 'staged' : state.previous ? 'promoted' : 'stable';
}

/** state.json as written, refused with its path when it is not what we write. */
export function readState(pkiDir: string): { state: StateFile; raw: string } | undefined {
  const file = path.join(pkiDir, STATE_FILE);
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    throw new PkiError(`${file}: not JSON (was it edited by hand?)`, 'restore the CA folder from its backup (docs/pki.md)');
  }
  const s = data as Partial<StateFile>;
  const ids = [s.current, s.next, s.previous].filter((v) => v !== undefined);
  if (s.version !== 1 || typeof s.current !== 'string' || !ids.every((v) => typeof v === 'string' && ID.test(v)) || (s.next && s.previous) || new Set(ids).size !== ids.length) {
    throw new PkiError(`${file}: not a state this version of provision wrote (${raw.trim().slice(0, 120)})`, 'restore the CA folder from its backup (docs/pki.md)');
  }
  return { state: { version: 1, current: s.current, ...(s.next ? { next: s.next } : {}), ...(s.previous ? { previous: s.previous } : {}) }, raw };
}

function keyTypeOf(cert: X509Certificate): KeyType | undefined {
  const key = cert.publicKey;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ec-p256';
  if (key.asymmetricKeyType === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 3072) return 'rsa-3072';
  return undefined;
}

/** One CA of the folder: its certificate must be a CA's, its key private (0600) and the certificate's own. */
function loadCaCert(pkiDir: string, id: string, role: CaRole): CaCert {
  const certFile = caCertFile(pkiDir, id);
  const keyFile = caKeyFile(pkiDir, id);
  assertPrivateFile(keyFile, `the ${role} CA key`);
  let certPem: string;
  let cert: X509Certificate;
  try {
    certPem = readFileSync(certFile, 'utf8');
    cert = new X509Certificate(certPem);
  } catch (err) {
    throw new PkiError(`the ${role} CA certificate ${certFile} cannot be read: ${(err as Error).message}`, 'restore the CA folder from its backup (docs/pki.md)');
  }
  if (!cert.ca || !cert.checkIssued(cert) || !cert.verify(cert.publicKey)) throw new PkiError(`${certFile} is not a self-signed CA certificate`);
  if (!cert.checkPrivateKey(createPrivateKey(readFileSync(keyFile)))) {
    throw new PkiError(`the ${role} CA key ${keyFile} does not belong to its certificate ${certFile}`, 'restore the CA folder from its backup (docs/pki.md)');
  }
  const keyType = keyTypeOf(cert);
  if (!keyType) throw new PkiError(`${certFile}: a key type provision does not make (${cert.publicKey.asymmetricKeyType})`);
  return { id, role, certPem, cert, certFile, keyFile, keyType };
}

/**
 * The CA of this folder, or undefined if none was made yet (check mode: nothing is created). Every
 * key is checked (mode 0600, matching its certificate) each time, as the secrets file is.
 */
export function loadCa(pkiDir: string): Ca | undefined {
  if (!existsSync(pkiDir)) return undefined;
  assertPrivateDir(pkiDir);
  const read = readState(pkiDir);
  if (!read) return undefined;
  assertPrivateDir(path.join(pkiDir, CAS_DIR));
  const { state } = read;
  const signer = loadCaCert(pkiDir, state.current, 'current');
  const other = state.next ? loadCaCert(pkiDir, state.next, 'next') : state.previous ? loadCaCert(pkiDir, state.previous, 'previous') : undefined;
  return { dir: pkiDir, phase: phaseOf(state), signer, trusted: other ? [signer, other] : [signer] };
}

/** The folder itself: made 0700 with its .gitignore and README; an existing one keeps what it has. */
export function prepareDir(pkiDir: string): void {
  mkdirSync(pkiDir, { recursive: true, mode: 0o700 });
  assertPrivateDir(pkiDir);
  const ignore = path.join(pkiDir, '.gitignore');
  if (!existsSync(ignore)) writeFileSync(ignore, SELF_IGNORE, { mode: 0o644 });
  const readme = path.join(pkiDir, 'README.txt');
  if (!existsSync(readme)) writeFileSync(readme, README_TEXT, { mode: 0o644 });
  mkdirSync(path.join(pkiDir, CAS_DIR), { recursive: true, mode: 0o700 });
  assertPrivateDir(path.join(pkiDir, CAS_DIR));
}

export interface CaOptions {
  /** Shown in the CA's name (the inventory's name): "provision internal CA prod". */
  label?: string;
  keyType?: KeyType;
  validityDays?: number;
  now?: Date;
  lockTimeoutMs?: number;
}

const dayMs = 24 * 60 * 60 * 1000;

/**
 * Make a new CA (key and self-signed certificate) in ca/<id>/ and return its id; the folder appears
 * whole (made in the work folder, then renamed), and no state names it yet.
 */
export async function makeCaFolder(pkiDir: string, opts: CaOptions): Promise<string> {
  await checkOpensslVersion();
  const keyType = opts.keyType ?? DEFAULT_KEY_TYPE;
  if (!KEY_TYPES.includes(keyType)) throw new PkiError(`key type "${String(keyType)}": one of ${KEY_TYPES.join(', ')}`);
  const now = opts.now ?? new Date();
  const label = (opts.label ?? '').replace(/[^A-Za-z0-9._ -]/g, '_').slice(0, 40).trim();
  const stamp = now.toISOString().slice(0, 10).replace(/-/g, '');
  return withWorkDir(pkiDir, async (work) => {
    const out = path.join(work, 'ca');
    mkdirSync(out, { mode: 0o700 });
    const keyFile = path.join(out, KEY_FILE);
    writePrivateFile(keyFile, await generatePrivateKeyPem(keyType));
    const certPem = await signCertificate({
      workDir: work,
      subjectKeyFile: keyFile,
      subject: `/O=provision/CN=provision internal CA${label ? ` ${label}` : ''} ${stamp}`,
      extensions: {
        // pathlen:0: this CA signs leaves only, never another CA.
        lines: ['basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash'],
      },
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + (opts.validityDays ?? DEFAULT_CA_VALIDITY_DAYS) * dayMs),
    });
    writeFileSync(path.join(out, CERT_FILE), certPem, { mode: 0o644 });
    const id = `${stamp}-${new X509Certificate(certPem).fingerprint256.replace(/:/g, '').slice(0, 8).toLowerCase()}`;
    renameSync(out, caDir(pkiDir, id));
    return id;
  });
}

/**
 * Publish a new state.json atomically. `expectedRaw` undefined: the file must not exist (the CA's
 * creation: link(2) never replaces, so of two racing runs exactly one wins). Otherwise it must still
 * hold exactly `expectedRaw` (it is read again just before the rename, under the lock).
 * Returns false when another run got there first.
 */
export function publishState(pkiDir: string, state: StateFile, expectedRaw: string | undefined): boolean {
  const file = path.join(pkiDir, STATE_FILE);
  const tmp = path.join(pkiDir, `${STATE_FILE}.${process.pid}.${Date.now()}.tmp`);
  writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  try {
    if (expectedRaw === undefined) {
      try {
        linkSync(tmp, file);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    }
    if (readState(pkiDir)?.raw !== expectedRaw) return false;
    renameSync(tmp, file);
    return true;
  } finally {
    rmSync(tmp, { force: true });
  }
}

const inFlight = new Map<string, Promise<Ca>>();

/**
 * The CA of this folder, made on first use (real runs only; check mode calls loadCa). Concurrent
 * callers of one process share one creation; other processes wait on the folder's lock, and the
 * one that finds a CA there after the wait uses it.
 */
export function ensureCa(pkiDir: string, opts: CaOptions = {}): Promise<Ca> {
  const dir = path.resolve(pkiDir);
  const pending = inFlight.get(dir);
  if (pending) return pending;
  const work = (async () => {
    const existing = loadCa(dir);
    if (existing) return existing;
    prepareDir(dir);
    return withCaLock(
      dir,
      async () => {
        const again = loadCa(dir);
        if (again) return again;
        const id = await makeCaFolder(dir, opts);
        if (!publishState(dir, { version: 1, current: id }, undefined)) {
          // Another run published its CA first (its lock was not ours to see): use that one.
          rmSync(caDir(dir, id), { recursive: true, force: true });
        }
        return loadCa(dir)!;
      },
      opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    );
  })();
  inFlight.set(dir, work);
  work.then(
    () => inFlight.delete(dir),
    () => inFlight.delete(dir),
  );
  return work;
}

/** The PEM file a peer trusts: every trusted CA certificate, the signer first. */
export function caBundle(ca: Pick<Ca, 'trusted'>): string {
  return ca.trusted.map((c) => c.certPem.trimEnd() + '\n').join('');
}
