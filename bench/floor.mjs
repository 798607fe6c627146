#!/usr/bin/env node
// The floor of `npm run bench`: the least a no-change run could cost. Connect to every host in
// parallel (ssh2, host keys checked against known_hosts), run ONE state-reading script each
// (our batched fact script), disconnect. Measured by the caller as a whole process, like our CLI.
//
//   node bench/floor.mjs CONFIG.json   with {hosts: [{name, address, port}], user, key, knownHosts, script}
import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const key = readFileSync(cfg.key);
const script = readFileSync(cfg.script, 'utf8');
const known = readFileSync(cfg.knownHosts, 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 3);

function run(host) {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const keys = known.filter(([pattern]) => pattern.split(',').includes(host.address)).map((f) => f[2]);
    client
      .on('ready', () => {
        client.exec('sh -s', (err, stream) => {
          if (err) return reject(err);
          let bytes = 0;
          stream.on('data', (d) => (bytes += d.length));
          stream.stderr.on('data', () => {});
          stream.on('close', (code) => {
            client.end();
            resolve({ host: host.name, code, bytes });
          });
          stream.end(script);
        });
      })
      .on('error', reject)
      .connect({
        host: host.address,
        port: host.port ?? 22,
        username: cfg.user,
        privateKey: key,
        readyTimeout: 30_000,
        hostVerifier: (k) => keys.includes(k.toString('base64')),
      });
  });
}

const results = await Promise.all(cfg.hosts.map(run));
const bad = results.filter((r) => r.code !== 0 || r.bytes === 0);
if (bad.length) {
  process.stderr.write(`floor: ${bad.map((r) => `${r.host} exit ${r.code}`).join(', ')}\n`);
  process.exitCode = 1;
}
