#!/usr/bin/env node
// The cost of a play's length to the controller (issue #13: "the prefetch becomes linear"):
// a no-change play of N generated `file` tasks on ONE lab host, measured as a whole process
// (/usr/bin/time: user and system CPU of the controller, wall). Median, min and max of --runs.
//
//   flock /work/lab.lock node bench/file-tasks.mjs [--tasks 500,2000] [--runs 3]
//         [--cli bin/provision.cjs] [--name core --subnet 10.86.0] [--keep]
//
// --cli: another build of the CLI to measure on the same host (e.g. main's, for a before/after);
// it is run with node. The lab instance (default "core", 10.86.0.0/24) is brought up with web-01
// only, and down at the end unless --keep.
// Each play is converged once before it is measured; the measured runs must change nothing.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliOf } from './lib.mjs';

const root = path.resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const NAME = opt('name', 'core');
const PREFIX = opt('subnet', '10.86.0');
const TASKS = opt('tasks', '500,2000').split(',').map(Number).filter(Boolean);
const RUNS = Number(opt('runs', 3));
const CLIS = opt('cli', cliOf(root)).split(',');
const KEEP = args.includes('--keep');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'provision-file-tasks-'));
const log = (s) => process.stderr.write(`file-tasks: ${s}\n`);
const lab = (argv) => spawnSync(process.execPath, [cliOf(root), 'lab', ...argv, '--name', NAME], { cwd: root, encoding: 'utf8' });

function measure(cli, argv) {
  const timeFile = path.join(tmp, 'time.txt');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, process.execPath, cli, ...argv], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => out.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const [user, sys] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      resolve({ code, user, sys, wallS: (performance.now() - t0) / 1000, output: Buffer.concat(out).toString() });
    });
  });
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => Math.round(x * 100) / 100;
  return { median: r(s[Math.floor(s.length / 2)]), min: r(s[0]), max: r(s[s.length - 1]) };
};

const stateDir = `/var/lib/provision-lab/${NAME}`;
const inventory = path.join(tmp, 'inv.yml');
writeFileSync(
  inventory,
  `defaults:\n  user: root\n  identity_file: ${stateDir}/ssh/id_ed25519\n  known_hosts: ${stateDir}/ssh/known_hosts\nhosts:\n  web-01: { address: ${PREFIX}.11 }\n`,
);
const playbook = (n) => {
  const file = path.join(tmp, `play-${n}.yml`);
  const tasks = Array.from({ length: n }, (_, i) => `    - { name: dir ${i}, file: { path: /srv/bench/d${i}, state: directory, mode: "0755" } }`);
  writeFileSync(file, `- name: ${n} file tasks\n  hosts: all\n  tasks:\n    - { name: base, file: { path: /srv/bench, state: directory } }\n${tasks.join('\n')}\n`);
  return file;
};

let up = false;
try {
  log(`lab up ${NAME} (${PREFIX}.0/24, web-01)`);
  const r = lab(['up', '--subnet', `${PREFIX}.0/24`, '--only', 'web-01', '--no-pebble']);
  if (r.status !== 0) throw new Error(`lab up: ${r.stderr || r.stdout}`);
  up = true;
  const rows = [];
  for (const n of TASKS) {
    const play = playbook(n);
    const argv = ['--inventory', inventory, '--playbook', play, '--json'];
    const converge = await measure(CLIS[0], argv);
    if (converge.code !== 0 && converge.code !== 2) throw new Error(`converge of ${n} tasks exited ${converge.code}: ${converge.output.slice(-2000)}`);
    for (const cli of CLIS) {
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        const m = await measure(cli, argv);
        if (m.code !== 0) throw new Error(`${cli}: the no-change run of ${n} tasks exited ${m.code}: ${m.output.slice(-2000)}`);
        runs.push(m);
      }
      const row = { cli: path.relative(root, cli) || cli, tasks: n, userS: stats(runs.map((m) => m.user)), sysS: stats(runs.map((m) => m.sys)), wallS: stats(runs.map((m) => m.wallS)) };
      log(JSON.stringify(row));
      rows.push(row);
    }
  }
  process.stdout.write(JSON.stringify({ host: `${NAME}/web-01`, runs: RUNS, loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100), rows }, null, 2) + '\n');
} finally {
  if (up && !KEEP) lab(['down']);
  rmSync(tmp, { recursive: true, force: true });
}
