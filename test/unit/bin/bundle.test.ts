/**
 * bin/bundle.mjs: the CLI bundle is evaluated as a CommonJS module with V8's code cache; the run cache
 * is written once after a command that reached hosts, taken by the next start, and replaced when V8
 * refuses it (a cache of another bundle or another Node). No timing here: what is read and written.
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadBundle } from '../../../bin/bundle.mjs';

function fixture(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bundle-'));
  const file = path.join(dir, 'provision.cjs');
  // What the real bundle relies on: module.exports, require of built-ins, __dirname.
  writeFileSync(file, "const os = require('node:os');\nexports.main = (argv) => `${argv.join(' ')}|${typeof os.cpus}|${__dirname}`;\n");
  return file;
}

describe('loadBundle', () => {
  it('evaluates the bundle as a CommonJS module (exports, require, __dirname)', () => {
    const file = fixture();
    const { exports } = loadBundle(file);
    expect((exports.main as (a: string[]) => string)(['--version'])).toBe(`--version|function|${path.dirname(file)}`);
  });

  it('writes the run cache once, after a command that reached hosts, and takes it next time', () => {
    const file = fixture();
    const run = `${file}.run-cache`;
    loadBundle(file).saveCache(false); // --version: nothing reached hosts, but there was no cache at all
    expect(existsSync(run)).toBe(true);
    const first = readFileSync(run);
    writeFileSync(run, first); // as written: V8 takes it
    const mtime = statSync(run).mtimeMs;
    loadBundle(file).saveCache(true);
    expect(statSync(run).mtimeMs).toBe(mtime); // taken, so not written again
  });

  it('replaces a run cache V8 refuses (another bundle) instead of keeping it', () => {
    const file = fixture();
    const run = `${file}.run-cache`;
    writeFileSync(run, Buffer.from('not a V8 code cache'));
    const loaded = loadBundle(file);
    expect((loaded.exports.main as (a: string[]) => string)([])).toContain('|function|'); // still runs
    loaded.saveCache(false);
    expect(readFileSync(run).toString()).not.toBe('not a V8 code cache');
  });
});
