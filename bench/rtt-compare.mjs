#!/usr/bin/env node
// Before/after of a no-change run at added round-trip times, checkouts interleaved run by run:
//   node bench/rtt-compare.mjs --inventory INV --playbook PB --rtt 0,50,100 --runs 5 \
//     --checkout before=/tmp/base --checkout after=. [--relay-port 45970] [--state-file F] [--out results.json]
//     [--checkout-env before=PROVISION_CHANNEL=exec] [--changing]
// --checkout-env NAME=VAR=VALUE sets an environment variable for that checkout's runs (the same tree
// twice, a setting on and off). --changing: each run must change things (exit 2, none failed) instead
// of changing nothing (bench/changing-tasks.yml).
// Each checkout is a tree with its own bin/provision.cjs (.mjs before #18) (`git archive COMMIT | tar -x -C DIR`, a
// node_modules, `node scripts/build.mjs`). The inventory's hosts must be converged: every run must
// report changed=0. Per RTT and checkout: wall, controller CPU, round trips per host and the recap's
// phases of the slowest host (median, min–max). RTT 0 is the lab as it is; above 0, bench/relay.mjs
// delays every SSH connection to the inventory's addresses (see bench/latency.mjs). Root, like the lab.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { withLatency } from './latency.mjs';
import { cliOf, load, log, measure, runFigures, summarise } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const all = (name) => args.flatMap((a, i) => (a === `--${name}` ? [args[i + 1]] : []));
const inventory = path.resolve(opt('inventory'));
const playbook = path.resolve(opt('playbook'));
const rtts = opt('rtt', '0,50,100').split(',').map(Number);
const runs = Number(opt('runs', '5'));
const changing = args.includes('--changing');
const envOf = (name) =>
  Object.fromEntries(all('checkout-env').flatMap((e) => {
    const [n, v, ...value] = e.split('=');
    return n === name ? [[v, value.join('=')]] : [];
  }));
const checkouts = all('checkout').map((c) => {
  const [name, dir] = c.split('=');
  return { name, bin: cliOf(path.resolve(dir)), env: envOf(name) };
});
const hosts = parse(readFileSync(inventory, 'utf8')).hosts;
const addresses = Object.values(hosts).map((h) => h.address);
const stateFile = opt('state-file', `/var/lib/provision-lab/rtt-compare-${process.pid}.json`);

const results = { inventory, playbook, changing, checkouts, hosts: Object.keys(hosts).length, runs, loadAtStart: load(), rtt: {} };
for (const rttMs of rtts) {
  const rows = Object.fromEntries(checkouts.map((c) => [c.name, []]));
  await withLatency({ rttMs, addresses, stateFile, firstPort: Number(opt('relay-port', '45970')) }, async () => {
    for (let i = 0; i < runs; i++) {
      for (const c of checkouts) {
        const r = await measure(process.execPath, [c.bin, '--inventory', inventory, '--playbook', playbook, '--json'], { env: c.env });
        const f = runFigures(r);
        const hostsOf = Object.values(f.recap.hosts);
        const bad = hostsOf.reduce((a, h) => a + h.failed + h.unreachable + (changing ? 0 : h.changed), 0);
        const expected = changing ? 2 : 0;
        if (r.code !== expected || bad || (changing && hostsOf.some((h) => h.changed === 0)))
          throw new Error(`${c.name} at ${rttMs} ms: not a ${changing ? 'changing' : 'no-change'} run (exit ${r.code}): ${JSON.stringify(f.recap.hosts)}\n${r.stderr.slice(-1500)}`);
        rows[c.name].push(f);
      }
    }
  });
  results.rtt[rttMs] = { load: load(), ...Object.fromEntries(checkouts.map((c) => [c.name, summarise(rows[c.name])])) };
  for (const c of checkouts) {
    const s = results.rtt[rttMs][c.name];
    log(`${rttMs} ms ${c.name}: wall ${s.wallS.median} s (${s.wallS.min}–${s.wallS.max}), engine ${s.engineS.median} s (${s.engineS.min}–${s.engineS.max}), cpu ${s.cpuS.median} s, trips ${s.roundTripsPerHost.median}, ` +
      `startup ${s.phasesMs.startup.median} connect ${s.phasesMs.connect.median} facts ${s.phasesMs.facts.median} read ${s.phasesMs.read.median} ms`);
  }
}
results.loadAtEnd = load();
const out = opt('out');
if (out) writeFileSync(out, JSON.stringify(results, null, 2) + '\n');
else process.stdout.write(JSON.stringify(results, null, 2) + '\n');
