// Controller CPU of the host-key check's preparation (read known_hosts, look the host up) for each of
// N hosts, with one line per host in the file: what every connect of a run does before its handshake.
// Before #18 the file was parsed again per connect (work growing with the square of the fleet).
//   node --import tsx bench/known-hosts-cpu.ts [CHECKOUT] [N]      (CHECKOUT: a source tree; default this one)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..'));
const hosts = Number(process.argv[3] ?? 100);
const { HostKeyCheck } = await import(path.join(root, 'src/transport/hostkeys/index.ts'));
const { ed25519KeyPair } = await import(path.join(root, 'src/util/ssh-keys.ts'));
const dir = mkdtempSync(path.join(tmpdir(), 'provision-known-hosts-cpu-'));
try {
  const file = path.join(dir, 'known_hosts');
  const key = (ed25519KeyPair().public as string).trim().split(/\s+/).slice(0, 2).join(' ');
  const address = (i: number) => `10.1.${i >> 8}.${i & 255}`;
  writeFileSync(file, Array.from({ length: hosts }, (_, i) => `${address(i)} ${key}`).join('\n') + '\n');
  const noCertificateFetch = () => Promise.reject(new Error('not expected'));
  const start = process.cpuUsage();
  for (let i = 0; i < hosts; i++) {
    await HostKeyCheck.prepare({ label: `h${i}`, address: address(i), port: 22, knownHosts: file, acceptNew: false, timeoutMs: 5000 }, noCertificateFetch);
  }
  const used = process.cpuUsage(start);
  console.log(`${root} ${hosts} hosts: ${((used.user + used.system) / 1000 / hosts).toFixed(3)} ms CPU per host`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
