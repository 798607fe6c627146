#!/usr/bin/env node
// The floor of `npm run bench`: the least a no-change run could cost, with the tools every admin
// has. OpenSSH (`ssh`, one process per host, host keys checked against known_hosts, key only, no
// ~/.ssh/config) connects to every host, runs ONE state-reading script (our batched fact script)
// on its stdin, and disconnects; at most `forks` hosts at once (the same parallelism as our run;
// default: all). Measured by the caller as a whole process, like our CLI.
//
//   node bench/floor.mjs CONFIG.json   with {hosts: [{name, address, port}], user, key, knownHosts, script, forks?}
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const script = readFileSync(cfg.script);
const forks = Math.max(1, Math.min(Number(cfg.forks) || cfg.hosts.length, cfg.hosts.length));

function run(host) {
  return new Promise((resolve) => {
    const child = spawn('ssh', [
      '-F', '/dev/null', '-T',
      '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${cfg.knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', '-i', cfg.key, '-o', 'ConnectTimeout=60',
      '-p', String(host.port ?? 22), '-l', cfg.user, host.address, 'sh -s',
    ], { stdio: ['pipe', 'pipe', 'pipe'] });
    let bytes = 0;
    let err = '';
    child.stdout.on('data', (d) => (bytes += d.length));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => resolve({ host: host.name, code: -1, bytes, err: String(e) }));
    child.on('close', (code) => resolve({ host: host.name, code, bytes, err }));
    child.stdin.end(script);
  });
}

const results = [];
let next = 0;
await Promise.all(Array.from({ length: forks }, async () => {
  while (next < cfg.hosts.length) results.push(await run(cfg.hosts[next++]));
}));
const bad = results.filter((r) => r.code !== 0 || r.bytes === 0);
if (bad.length) {
  process.stderr.write(`floor: ${bad.map((r) => `${r.host} exit ${r.code}: ${r.err.trim().split('\n').pop()}`).join(', ')}\n`);
  process.exitCode = 1;
}
