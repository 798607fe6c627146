// What every part of `npm run bench` shares: running commands, measuring a process as a whole
// (wall, CPU, peak RSS), medians and ranges, reading our --json recap.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '..');
let scratch;
/** This benchmark run's scratch folder, made on first use (nothing is made by importing this file). */
export const tmp = () => (scratch ??= mkdtempSync(path.join(os.tmpdir(), 'provision-bench-')));
export function removeTmp() {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
}

export const log = (s) => process.stderr.write(`bench: ${s}\n`);
export const load = () => os.loadavg().map((x) => Number(x.toFixed(2)));
export const round = (x) => Math.round(x * 100) / 100;

export function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout || String(r.error)).slice(-2000)}`);
  return r;
}

/**
 * A checkout's CLI entry: bin/provision.cjs, or bin/provision.mjs in a checkout from before the entry
 * became CommonJS (a baseline of a before/after comparison).
 */
export const cliOf = (dir) => [path.join(dir, 'bin/provision.cjs'), path.join(dir, 'bin/provision.mjs')].find((f) => existsSync(f)) ?? path.join(dir, 'bin/provision.cjs');

/** Our CLI, from this checkout. */
export const cli = (argv, opts) => sh(process.execPath, [cliOf(root), ...argv], opts);

/**
 * A project with the checkout DIR installed as its dependency (node_modules/provision, and its bin in
 * node_modules/.bin), where `npx --no provision` runs what users run. In the checkout itself npx finds
 * no local bin and would fetch a package of that name from the registry (two bench runs hung on it):
 * run npx with `--no` (never fetch) and this project as its cwd. And with `--` before `provision`:
 * npm reads every option wherever it stands, so `npx --no provision --version` prints npm's version.
 */
export function npxProject(dir) {
  const project = mkdtempSync(path.join(tmp(), 'npx-'));
  mkdirSync(path.join(project, 'node_modules/.bin'), { recursive: true });
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'npx-startup', private: true, dependencies: { provision: `file:${dir}` } }));
  symlinkSync(dir, path.join(project, 'node_modules/provision'));
  symlinkSync(path.join('../provision', path.relative(dir, cliOf(dir))), path.join(project, 'node_modules/.bin/provision'));
  return project;
}

let measured = 0;
/** Runs a command as one measured process: wall (ms), user+sys CPU (s), peak RSS (MB), output, exit code. */
export function measure(cmd, argv, opts = {}) {
  const timeFile = path.join(tmp(), `time-${++measured}.txt`);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...argv], { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env } });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - t0;
      const [u, s, kb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      resolve({ wallMs, cpuS: u + s, rssMB: kb / 1024, code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

export const stats = (xs) => {
  const s = xs.filter((x) => typeof x === 'number' && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const m = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median: round(m), min: round(s[0]), max: round(s[s.length - 1]), n: s.length };
};

export function recapOf(stdout) {
  const line = stdout.trim().split('\n').reverse().find((l) => l.includes('"kind":"recap"'));
  if (!line) throw new Error(`no recap in output:\n${stdout.slice(-2000)}`);
  return JSON.parse(line);
}

/** The figures of one measured run of our CLI with --json, from the process and its recap. */
export function runFigures(r) {
  const recap = recapOf(r.stdout);
  const trips = Object.values(recap.roundTrips ?? {});
  // The slowest host's phases: what the run waited for.
  const hostPhases = Object.values(recap.phases?.hosts ?? {});
  const slowest = (k) => (hostPhases.length ? Math.max(...hostPhases.map((h) => h[k] ?? 0)) : NaN);
  return {
    recap,
    wallMs: r.wallMs, cpuS: r.cpuS, rssMB: r.rssMB, engineMs: recap.wallMs,
    roundTripsPerHost: trips.length ? Math.max(...trips) : NaN,
    startupMs: recap.phases?.startupMs ?? NaN, connectMs: slowest('connectMs'), factsMs: slowest('factsMs'), readMs: slowest('readMs'),
  };
}

/** Medians and ranges of a list of runFigures(). */
export function summarise(rows) {
  const s = (k, scale = 1) => stats(rows.map((r) => r[k] / scale));
  return {
    wallS: s('wallMs', 1000), engineS: s('engineMs', 1000), cpuS: s('cpuS'), rssMB: s('rssMB'), roundTripsPerHost: s('roundTripsPerHost'),
    phasesMs: { startup: s('startupMs'), connect: s('connectMs'), facts: s('factsMs'), read: s('readMs') },
  };
}

/** N no-change runs of our CLI (each a fresh process); every one must change nothing. */
export async function ourNoChange(inventory, playbook, runs, extra = [], opts = {}) {
  const rows = [];
  for (let i = 0; i < runs; i++) {
    const r = await measure(process.execPath, [cliOf(root), '--inventory', inventory, '--playbook', playbook, '--json', ...extra], opts);
    const f = runFigures(r);
    const bad = Object.values(f.recap.hosts).reduce((a, c) => a + c.changed + c.failed + c.unreachable, 0);
    if (r.code !== 0 || bad) throw new Error(`${inventory}: the no-change run changed or failed (exit ${r.code}): ${JSON.stringify(f.recap.hosts)}`);
    rows.push(f);
  }
  return rows;
}
