/**
 * bin/bundle.cjs: the CLI bundle is evaluated as a CommonJS module with V8's code cache; the run cache
 * is written once after a command that reached hosts, taken by the next start, and replaced when V8
 * refuses it (a cache of another bundle or another Node). No timing here: what is read and written.
 */
import { isAscii } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadBundle } from '../../../bin/bundle.cjs';

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

describe('the text loadBundle compiles, and the build cache made from it', () => {
  const bundleCli = path.resolve(import.meta.dirname, '../../../bin/bundle.cjs');
  // The build's bundles are ASCII and read as latin1; any other file must still read as UTF-8 (a
  // latin1 read would make "→" three characters), and for both the cache that `--make-cache` makes
  // must be the one loadBundle's compile takes: V8 refuses a cache made from another text.
  it.each([
    ['ASCII', 'exports.s = "\\u2192"; // a comment\n'],
    ['non-ASCII (not made by the build)', 'exports.s = "→"; // → in a comment\n'],
  ])('%s: read right, and the build cache is taken (no run cache written for a refused one)', (_, text) => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'bundle-')), 'provision.cjs');
    writeFileSync(file, text);
    for (const command of ['--make-cache', '--check-cache']) expect(spawnSync(process.execPath, [bundleCli, command, file]).status, command).toBe(0);
    const loaded = loadBundle(file);
    expect(loaded.exports.s).toBe('→');
    loaded.saveCache(false); // writes only when V8 refused the cache it was given
    expect(existsSync(`${file}.run-cache`)).toBe(false);
  });
});

describe('the bundle built from these sources (scripts/build.mjs)', () => {
  const root = path.resolve(import.meta.dirname, '../../..');
  const fixtures = path.join(root, 'test/fixtures/bad/cli');

  /** The CLI's main from a bundle, in a child process: its exit code and stderr. */
  function runBundled(bundle: string, args: string[]): { code: number | null; stderr: string } {
    const script = `import { loadBundle } from ${JSON.stringify(path.join(root, 'bin/bundle.cjs'))};
process.exitCode = await loadBundle(${JSON.stringify(bundle)}).exports.main(${JSON.stringify(args)});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, PROVISION_SECRET_DB_PASSWORD: 'Pa55w0rd2024' },
    });
    return { code: r.status, stderr: r.stderr };
  }

  // Every module of the sources must work inside one CommonJS file: a module that finds a file of a
  // dependency at run time (createRequire(import.meta.url), which is undefined there) broke the
  // build, and a second copy of nunjucks beside the bundled one would not know the parser's nodes.
  it('builds, loads, and analyses and renders templates as the sources do', () => {
    // Inside the package, as dist/ is: the sources find the package root from their own folder.
    mkdirSync(path.join(root, 'dist'), { recursive: true });
    const dir = mkdtempSync(path.join(root, 'dist', 'test-build-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const build = spawnSync(process.execPath, [path.join(root, 'scripts/build.mjs'), dir], { encoding: 'utf8', timeout: 120_000 });
    expect(build.status, build.stderr).toBe(0);
    const bundle = path.join(dir, 'provision.cjs');
    // Pure ASCII (scripts/ascii.mjs): bin/bundle.cjs reads it as latin1, a one-byte string for V8.
    // esbuild keeps comments as written, and ours and zod's hold …, —, →, ≥ and à.
    for (const file of [bundle, path.join(dir, 'api.cjs')]) expect(isAscii(readFileSync(file)), file).toBe(true);
    // ssh2's native ciphers are required by a path relative to its own file: kept relative, the bundle
    // looked for them beside itself, found nothing, and ssh2 ran its JavaScript ciphers (every host
    // phase slower). They must be required by package path, resolvable from the bundle's folder.
    const natives = [...readFileSync(bundle, 'utf8').matchAll(/require\("([^"]+\.node)"\)/g)].map((m) => m[1]!);
    expect(natives).toContain('ssh2/lib/protocol/crypto/build/Release/sshcrypto.node');
    for (const addon of natives) {
      expect(addon, 'a native addon required by a relative path').not.toMatch(/^\./);
      if (existsSync(path.join(root, 'node_modules', addon))) expect(createRequire(bundle).resolve(addon)).toBe(realpathSync(path.join(root, 'node_modules', addon))); // real paths: node_modules may be a symlink
    }
    const refused = runBundled(bundle, ['-i', path.join(fixtures, 'secret.yml'), '-p', path.join(fixtures, 'secret-in-cmd.yml')]);
    expect(refused.stderr).toContain(`secret-in-cmd.yml:7:14: [0].tasks[0].command.cmd: reads the secret var "db_password"`);
    expect(refused.code).toBe(4);
    // Accepted (rendered for the host): the run goes on to connect, to a closed port.
    expect(runBundled(bundle, ['-i', path.join(fixtures, 'secret.yml'), '-p', path.join(fixtures, 'secret-on-stdin.yml')]).code).toBe(3);
  }, 180_000);
});
