import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caBundle, ensureCa, loadCa, pkiDirFor, PkiError } from '../../../src/pki/index.js';
import { InputError } from '../../../src/util/errors.js';
import { opensslSync, tempRoot } from './helpers.js';

const tmp = tempRoot('store');
afterAll(tmp.cleanup);

const mode = (p: string) => statSync(p).mode & 0o777;

async function refusal(fn: () => unknown): Promise<PkiError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PkiError);
    return err as PkiError;
  }
  throw new Error('no error');
}

describe('where the CA lives', () => {
  it('beside the inventory: prod.yml → prod.pki, an Ansible inventory folder → <folder>.pki beside it', () => {
    const inv = path.join(tmp.root, 'inventory');
    mkdirSync(path.join(inv, 'staging'), { recursive: true });
    expect(pkiDirFor({ file: path.join(inv, 'prod.yml') })).toBe(path.join(inv, 'prod.pki'));
    expect(pkiDirFor({ file: path.join(inv, 'hosts.ini') })).toBe(path.join(inv, 'hosts.pki'));
    expect(pkiDirFor({ file: path.join(inv, 'staging') })).toBe(path.join(inv, 'staging.pki'));
  });
});

describe('the CA: created on first use, 0600, reused', () => {
  it('loadCa (check mode) finds none and creates nothing', () => {
    const dir = tmp.fresh();
    expect(loadCa(dir)).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
  });

  it('is made on first use: folder 0700, key 0600, a CA certificate openssl accepts as one (EC P-256, 10 years)', async () => {
    const dir = tmp.fresh();
    const ca = await ensureCa(dir, { label: 'prod' });
    expect(ca.phase).toBe('stable');
    expect(ca.trusted).toEqual([ca.signer]);
    expect(mode(dir)).toBe(0o700);
    expect(mode(path.dirname(ca.signer.keyFile))).toBe(0o700);
    expect(mode(ca.signer.keyFile)).toBe(0o600);
    expect(readFileSync(ca.signer.keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    // Nothing of a run's scratch is left behind.
    expect(readdirSync(dir).filter((f) => f.startsWith('work-'))).toEqual([]);

    const text = opensslSync(['x509', '-noout', '-text', '-in', ca.signer.certFile]).out;
    expect(text).toMatch(/CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Certificate Sign, CRL Sign/);
    expect(text).toMatch(/NIST CURVE: P-256/);
    expect(text).toMatch(/Subject: O = provision, CN = provision internal CA prod \d{8}/);
    const years = (new Date(ca.signer.cert.validTo).getTime() - Date.now()) / (365.25 * 86_400_000);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThan(10.1);
    // The CA certificate verifies against itself as a trust anchor.
    writeFileSync(path.join(tmp.root, 'ca-only.pem'), caBundle(ca));
    expect(opensslSync(['verify', '-CAfile', path.join(tmp.root, 'ca-only.pem'), ca.signer.certFile]).status).toBe(0);
  });

  it('is reused across runs: the same CA, the key file untouched', async () => {
    const dir = tmp.fresh();
    const first = await ensureCa(dir);
    const keyBefore = readFileSync(first.signer.keyFile);
    const mtime = statSync(first.signer.keyFile).mtimeMs;
    const second = await ensureCa(dir);
    expect(second.signer.id).toBe(first.signer.id);
    expect(second.signer.cert.fingerprint256).toBe(first.signer.cert.fingerprint256);
    expect(readFileSync(second.signer.keyFile)).toEqual(keyBefore);
    expect(statSync(second.signer.keyFile).mtimeMs).toBe(mtime);
    expect(readdirSync(path.join(dir, 'ca'))).toEqual([first.signer.id]);
    expect(loadCa(dir)?.signer.id).toBe(first.signer.id);
  });

  it('concurrent callers in one process get one CA', async () => {
    const dir = tmp.fresh();
    const cas = await Promise.all([ensureCa(dir), ensureCa(dir), ensureCa(dir)]);
    expect(new Set(cas.map((c) => c.signer.id)).size).toBe(1);
    expect(readdirSync(path.join(dir, 'ca'))).toHaveLength(1);
  });

  it('refuses a key whose mode is looser than 0600 (0644, 0640), naming the file and the fix; it is not repaired', async () => {
    const dir = tmp.fresh();
    const ca = await ensureCa(dir);
    for (const loose of [0o644, 0o640, 0o604]) {
      chmodSync(ca.signer.keyFile, loose);
      const err = await refusal(() => ensureCa(dir));
      expect(err).toBeInstanceOf(InputError); // exit 4: bad input, no host contacted
      expect(err.message).toBe(`the current CA key ${ca.signer.keyFile} is readable by others (mode ${loose.toString(8).padStart(4, '0')}, expected 0600)`);
      expect(err.hint).toContain(`chmod 600 ${ca.signer.keyFile}`);
      expect(() => loadCa(dir)).toThrow(PkiError);
      expect(mode(ca.signer.keyFile)).toBe(loose);
    }
    chmodSync(ca.signer.keyFile, 0o600);
    expect((await ensureCa(dir)).signer.id).toBe(ca.signer.id);
  });

  it('refuses a CA folder others can write to (they could swap the CA certificate)', async () => {
    const dir = tmp.fresh();
    await ensureCa(dir);
    chmodSync(dir, 0o777);
    expect((await refusal(() => ensureCa(dir))).message).toMatch(/can be written by others \(mode 0777, expected 0700\)/);
    chmodSync(dir, 0o700);
    chmodSync(path.join(dir, 'ca'), 0o770);
    expect((await refusal(() => ensureCa(dir))).message).toMatch(/ca can be written by others/);
    chmodSync(path.join(dir, 'ca'), 0o700);
  });

  it('refuses a key that does not belong to its certificate, and a state.json it did not write', async () => {
    const a = await ensureCa(tmp.fresh());
    const b = await ensureCa(tmp.fresh());
    writeFileSync(a.signer.keyFile, readFileSync(b.signer.keyFile), { mode: 0o600 });
    expect((await refusal(() => ensureCa(a.dir))).message).toMatch(/does not belong to its certificate/);

    const c = await ensureCa(tmp.fresh());
    writeFileSync(path.join(c.dir, 'state.json'), '{"version":1,"current":"../../etc"}');
    expect((await refusal(() => ensureCa(c.dir))).message).toMatch(/state\.json: not a state this version of provision wrote/);
    writeFileSync(path.join(c.dir, 'state.json'), 'current: x');
    expect((await refusal(() => ensureCa(c.dir))).message).toMatch(/state\.json: not JSON/);
  });

  it('never reaches git: the folder ignores itself, whatever the project .gitignore says', async () => {
    const repo = path.join(tmp.root, 'repo');
    mkdirSync(path.join(repo, 'inventory'), { recursive: true });
    execFileSync('git', ['init', '-q', repo]);
    writeFileSync(path.join(repo, 'inventory', 'prod.yml'), 'hosts: {}\n');
    const dir = pkiDirFor({ file: path.join(repo, 'inventory', 'prod.yml') });
    await ensureCa(dir);
    execFileSync('git', ['-C', repo, 'add', '-A']);
    const staged = execFileSync('git', ['-C', repo, 'diff', '--cached', '--name-only'], { encoding: 'utf8' }).trim().split('\n');
    expect(staged).toEqual(['inventory/prod.yml']);
  });
});
