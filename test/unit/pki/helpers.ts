import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** A fresh folder for one test file; removed by the returned cleanup. */
export function tempRoot(prefix: string): { root: string; cleanup: () => void; fresh: (name?: string) => string } {
  const root = mkdtempSync(path.join(tmpdir(), `provision-pki-${prefix}-`));
  let n = 0;
  return {
    root,
    cleanup: () => rmSync(root, { recursive: true, force: true }),
    /** A path for a CA folder that does not exist yet. */
    fresh: (name = 'inv') => path.join(root, `${n++}-${name}.pki`),
  };
}

/** The real openssl, as the verifier of what we made (never our own parsing). */
export function opensslSync(args: string[], input?: string): { status: number; out: string } {
  try {
    return { status: 0, out: execFileSync('openssl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OPENSSL_CONF: '/dev/null' } }) };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { status: e.status ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Async openssl (for s_client against a server of this very process: a sync call would block it). */
export async function opensslAsync(args: string[], input = ''): Promise<{ status: number; out: string }> {
  const run = promisify(execFile);
  try {
    const child = run('openssl', args, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, OPENSSL_CONF: '/dev/null' } });
    child.child.stdin?.end(input);
    const { stdout, stderr } = await child;
    return { status: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { status: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** `openssl verify -CAfile bundle leaf` (files written in dir). */
export function opensslVerify(dir: string, bundlePem: string, leafPem: string, extra: string[] = []): { status: number; out: string } {
  const bundle = path.join(dir, `bundle-${Math.random().toString(36).slice(2)}.pem`);
  const leaf = path.join(dir, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(bundle, bundlePem);
  writeFileSync(leaf, leafPem);
  return opensslSync(['verify', '-CAfile', bundle, ...extra, leaf]);
}

export const DAY_MS = 24 * 60 * 60 * 1000;
