#!/usr/bin/env node
// The CLI's own start-up, before/after: each command a fresh process, the checkouts interleaved run by
// run, median (min–max) of wall, user+system CPU and — for a run that reaches hosts — the recap's
// `phases.startupMs` (process start to the run's first step; the hosts are contacted after it).
//
//   node bench/startup.mjs [--runs 10] [--checkout before=/tmp/base] [--checkout after=.]
//                          [--inventory FILE --playbook FILE]   a run on hosts (e.g. a no-change run)
//                          [--npx] [--only version,help,inventory,run] [--out FILE.json]
//
// A checkout is a folder with bin/provision.cjs (bin/provision.mjs before #18's CommonJS entry) and its dist/ (`git archive COMMIT | tar -x -C DIR`,
// node_modules beside it, `node scripts/build.mjs`): an archive has no .git, so its CLI always takes
// its bundle, as an installed package does. `--npx` also times `npx provision` in each checkout
// (what users type) and `./node_modules/.bin/provision`-style direct starts are the `node` rows.
// Never a timed assertion anywhere: these are figures to read with the machine's load beside them.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { cliOf, load, log, measure, npxProject, removeTmp, round, runFigures, stats } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const opts = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const RUNS = Number(opt('runs', 10));
const checkouts = (opts('checkout').length ? opts('checkout') : [`here=${path.resolve(import.meta.dirname, '..')}`]).map((c) => {
  const [label, dir] = c.includes('=') ? [c.slice(0, c.indexOf('=')), c.slice(c.indexOf('=') + 1)] : [path.basename(c), c];
  return { label, dir: path.resolve(dir) };
});
const inventory = opt('inventory', '');
const playbook = opt('playbook', '');
const only = opt('only', '') ? opt('only', '').split(',') : undefined;
const want = (k) => !only || only.includes(k);

/** [label, command, argv, cwd] of every variant, one list per checkout. */
const variants = [['node -e 0 (Node alone)', process.execPath, ['-e', '0'], process.cwd()]];
for (const { label, dir } of checkouts) {
  const bin = cliOf(dir);
  const runArgs = ['--inventory', path.resolve(inventory), '--playbook', path.resolve(playbook || 'x'), '--json'];
  const commands = [
    ['version', ['--version']],
    ['help', ['--help']],
    ...(inventory ? [['inventory', ['inventory', '--inventory', path.resolve(inventory)]], ['run', runArgs]] : []),
  ].filter(([k]) => want(k) && (k !== 'run' || playbook));
  for (const [k, argv] of commands) {
    variants.push([`${label}: node ${path.relative(dir, bin)} ${k}`, process.execPath, [bin, ...argv], dir]);
    if (args.includes('--npx')) variants.push([`${label}: npx provision ${k}`, 'npx', ['--no', '--', 'provision', ...argv], npxProject(dir)]);
  }
}

log(`start-up: ${variants.length} commands × ${RUNS}, interleaved (load ${load().join(' ')})`);
const rows = variants.map(() => []);
const loadAtStart = load();
for (let i = 0; i < RUNS; i++) {
  for (const [k, [label, cmd, argv, cwd]] of variants.entries()) {
    const r = await measure(cmd, argv, { cwd });
    // 0 no change; a run that changed something or failed is not a start-up figure.
    if (r.code !== 0) throw new Error(`${label} exited ${r.code}: ${(r.stderr || r.stdout).slice(-800)}`);
    const recap = r.stdout.includes('"kind":"recap"') ? runFigures(r) : undefined;
    if (recap && Object.values(recap.recap.hosts).some((h) => h.changed || h.failed || h.unreachable)) throw new Error(`${label}: the run was not a no-change run`);
    rows[k].push({ wallMs: r.wallMs, cpuMs: r.cpuS * 1000, startupMs: recap?.startupMs });
  }
}
const results = {
  when: new Date().toISOString(),
  node: process.version,
  runs: RUNS,
  load: { atStart: loadAtStart, atEnd: load() },
  commands: Object.fromEntries(variants.map(([label], k) => [label, {
    wallMs: stats(rows[k].map((r) => round(r.wallMs))),
    cpuMs: stats(rows[k].map((r) => round(r.cpuMs))),
    ...(rows[k][0].startupMs !== undefined ? { startupMs: stats(rows[k].map((r) => r.startupMs)) } : {}),
  }])),
};
const fmt = (s) => `${s.median} (${s.min}–${s.max})`;
for (const [label, c] of Object.entries(results.commands)) {
  console.log(`${label.padEnd(58)} wall ${fmt(c.wallMs).padEnd(22)} cpu ${fmt(c.cpuMs).padEnd(22)}${c.startupMs ? ` startupMs ${fmt(c.startupMs)}` : ''}`);
}
console.log(`load at start ${results.load.atStart.join(' ')}, at end ${results.load.atEnd.join(' ')}`);
if (opt('out', '')) writeFileSync(opt('out', ''), JSON.stringify(results, null, 2) + '\n');
removeTmp();
