/**
 * Not a test: measures what one command costs per sudo mode (docs/security.md, "Become"), on a lab
 * host of its own instance, directly and through a relay that delays each direction by DELAY ms
 * (so every round trip shows). Each command is `cat` with 1 KB on stdin; the median of N.
 *
 *   node_modules/.bin/tsx test/integration/become-latency.mts [DELAY_MS=100] [N=12]
 */
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Host } from '../../src/inventory/index.ts';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { SshConnection } from '../../src/transport/index.ts';
import { onConsole } from './faults-helpers.ts';

const NAME = 'bec';
const ADDRESS = '10.91.0.11';
const DELAY = Number(process.argv[2] ?? 100);
const N = Number(process.argv[3] ?? 12);
const PASSWORD = 'Tr0ub4dor&3;hunter2';

/** A TCP relay to the host's sshd that holds each chunk DELAY ms (latency without throttling). */
function relay(delay: number): Promise<number> {
  const server = net.createServer((c) => {
    const u = net.connect(22, ADDRESS);
    for (const [from, to] of [[c, u], [u, c]] as const) {
      from.on('data', (d) => setTimeout(() => to.write(d), delay));
      from.on('close', () => to.destroy());
      from.on('error', () => {});
    }
  });
  server.unref();
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as net.AddressInfo).port)));
}

await labUp({ name: NAME, subnet: '10.91.0.0/24', only: ['web-01'], pebble: false });
try {
  const setup = await onConsole(
    NAME,
    'web-01',
    `set -e
for u in alice bob carol; do id $u >/dev/null 2>&1 || useradd -m -s /bin/bash -G sudo $u; echo "$u:${PASSWORD}" | chpasswd
  install -d -m 700 -o $u -g $u /home/$u/.ssh; install -m 600 -o $u -g $u /root/.ssh/authorized_keys /home/$u/.ssh/; done
printf 'Defaults:alice timestamp_timeout=0\\nbob ALL=(ALL) NOPASSWD: ALL\\nDefaults:carol timestamp_type=global\\n' > /etc/sudoers.d/latency
chmod 440 /etc/sudoers.d/latency; visudo -cq`,
  );
  if (setup.code !== 0) throw new Error(setup.stderr);
  process.env.LATENCY_SUDO_PASSWORD = PASSWORD;
  const port = DELAY ? await relay(DELAY) : 22;
  const knownHosts = path.join(mkdtempSync(path.join(tmpdir(), 'latency-')), 'known_hosts');
  const host = (user: string, passwordEnv?: string): Host => ({
    name: user,
    address: DELAY ? '127.0.0.1' : ADDRESS,
    groups: [],
    vars: {},
    connection: { user, port, identityFile: labPaths(NAME).sshKey, knownHosts, acceptNewHostKeys: true, become: true, becomeUser: 'root', becomePasswordEnv: passwordEnv, connectTimeoutMs: 10_000 },
  });
  const stdin = `${'x'.repeat(1024)}\n`;
  const cases: Array<[string, Host]> = [
    ['root, no sudo', host('root')],
    ['NOPASSWD, no password set (sudo -n)', host('bob')],
    ['NOPASSWD, password set', host('bob', 'LATENCY_SUDO_PASSWORD')],
    ['cached timestamp, password set', host('carol', 'LATENCY_SUDO_PASSWORD')],
    ['sudo asks every time, password set', host('alice', 'LATENCY_SUDO_PASSWORD')],
  ];
  for (const [label, h] of cases) {
    const conn = await SshConnection.connect(h);
    let t0 = performance.now();
    await conn.exec('cat', { stdin });
    const first = performance.now() - t0;
    const times: number[] = [];
    let exact = true;
    for (let i = 0; i < N; i++) {
      t0 = performance.now();
      const r = await conn.exec('cat', { stdin });
      times.push(performance.now() - t0);
      exact &&= r.stdout === stdin;
    }
    conn.close();
    const median = [...times].sort((a, b) => a - b)[Math.floor(N / 2)]!;
    console.log(`${label.padEnd(38)} first ${first.toFixed(0).padStart(5)} ms, then median ${median.toFixed(0).padStart(5)} ms${exact ? '' : '  (stdin NOT as sent)'}`);
  }
} finally {
  await labDown(NAME);
}
