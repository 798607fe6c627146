import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureCa } from '../../../src/pki/index.js';
import { withCaLock } from '../../../src/pki/lock.js';
import { publishState } from '../../../src/pki/store.js';
import { tempRoot } from './helpers.js';

/*
 * Two runs at once must not make two CAs: real processes (node + tsx, as the CLI runs), released
 * together by a go file, each calling ensureCa on the same empty folder.
 */
const tmp = tempRoot('lock');
afterAll(tmp.cleanup);

const CHILD = path.join(import.meta.dirname, 'ensure-ca-child.ts');

interface ChildResult {
  id?: string;
  fingerprint?: string;
  error?: string;
}

/** Start a child run; resolves with what it printed once it exits. */
function child(dir: string, goFile: string, lockTimeoutMs?: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, goFile, ...(lockTimeoutMs ? [String(lockTimeoutMs)] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      try {
        resolve(JSON.parse(out) as ChildResult);
      } catch {
        reject(new Error(`child exited ${code}: ${out} ${err}`));
      }
    });
  });
}

describe('the CA lock', () => {
  it('four runs started at the same moment on an empty folder end with one CA, the same for all', async () => {
    for (let round = 0; round < 2; round++) {
      const dir = tmp.fresh();
      const go = path.join(tmp.root, `go-${round}`);
      const runs = [0, 1, 2, 3].map(() => child(dir, go));
      // Let every child load (tsx takes a while), then release them together.
      await new Promise((r) => setTimeout(r, 3000));
      writeFileSync(go, '');
      const results = await Promise.all(runs);
      expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
      expect(new Set(results.map((r) => r.fingerprint)).size).toBe(1);
      expect(readdirSync(path.join(dir, 'ca'))).toEqual([results[0]!.id]);
      expect(readdirSync(dir).filter((f) => f === 'lock' || f.startsWith('work-') || f.endsWith('.tmp'))).toEqual([]);
    }
  });

  it('a run that finds the lock held by a live process waits, then names the holder', async () => {
    const dir = tmp.fresh();
    mkdirSync(dir, { mode: 0o700 });
    const go = path.join(tmp.root, 'go-held');
    writeFileSync(go, '');
    let release!: () => void;
    const held = withCaLock(dir, () => new Promise<void>((r) => (release = r)));
    const result = await child(dir, go, 1500);
    expect(result.error).toBe(`the CA folder ${dir} is locked by process ${process.pid} on ${hostname()} since ${JSON.parse(require('node:fs').readFileSync(path.join(dir, 'lock'), 'utf8')).since}`);
    expect(existsSync(path.join(dir, 'state.json'))).toBe(false);
    release();
    await held;
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
    expect((await child(dir, go)).id).toMatch(/^\d{8}-[0-9a-f]{8}$/);
  });

  it('a lock left by a run that was killed (its process is gone) is taken over', async () => {
    const dir = tmp.fresh();
    mkdirSync(dir, { mode: 0o700 });
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(gone.stdout);
    writeFileSync(path.join(dir, 'lock'), JSON.stringify({ pid: deadPid, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
    const ca = await ensureCa(dir, { lockTimeoutMs: 5000 });
    expect(ca.signer.id).toMatch(/^\d{8}-[0-9a-f]{8}$/);
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
  });

  it('a lock of another machine (a shared disk) is not taken over', async () => {
    const dir = tmp.fresh();
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(path.join(dir, 'lock'), JSON.stringify({ pid: 1, host: 'other-machine', since: '2026-01-01T00:00:00.000Z' }));
    await expect(ensureCa(dir, { lockTimeoutMs: 300 })).rejects.toThrow(`the CA folder ${dir} is locked by process 1 on other-machine since 2026-01-01T00:00:00.000Z`);
  });

  it('the CA is published with link(2): of two publications of a first state, exactly one wins', () => {
    const dir = tmp.fresh();
    mkdirSync(dir, { mode: 0o700 });
    expect(publishState(dir, { version: 1, current: '20260101-aaaaaaaa' }, undefined)).toBe(true);
    expect(publishState(dir, { version: 1, current: '20260101-bbbbbbbb' }, undefined)).toBe(false);
    // A change is made only over the state it was computed from.
    expect(publishState(dir, { version: 1, current: '20260101-cccccccc' }, 'something else')).toBe(false);
    expect(JSON.parse(require('node:fs').readFileSync(path.join(dir, 'state.json'), 'utf8')).current).toBe('20260101-aaaaaaaa');
  });
});
