/**
 * A bounded packet capture on a lab instance's bridge, read back as text: what crossed the network
 * between the lab's hosts while `during` ran. Shared by the tests that prove traffic is encrypted
 * (edge.test.ts: load balancer → web server; db-tls.test.ts: replication and database clients).
 * Bounded three ways: `timeout` kills tcpdump after `boundSeconds`, `-c` stops it after `maxPackets`,
 * and the start is polled for a bounded time.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { bridgeName } from '../../src/lab/layout.ts';
import { pollUntil } from './faults-helpers.ts';

export interface Capture {
  /** tcpdump -A of every packet: headers and payload as text (non-printable bytes as dots). */
  text: string;
  /** Packets whose TCP payload starts a TLS handshake record (content type 22). */
  handshakes: number;
  /** Packets captured. */
  packets: number;
  /** tcpdump's own account ("N packets captured | M received by filter | K dropped by kernel"), for failure messages. */
  summary: string;
}

export async function captureOnBridge(
  opts: { instance: string; dir: string; filter: string; maxPackets?: number; boundSeconds?: number },
  during: () => Promise<void>,
): Promise<Capture> {
  const file = path.join(opts.dir, `cap-${Date.now()}-${Math.random().toString(36).slice(2, 6)}.pcap`);
  // -Z root: Debian's tcpdump otherwise drops to its own user, which cannot write into a 0700 folder.
  // --immediate-mode: without it libpcap hands packets over in blocks retired after a 1 s timeout, and the
  // SIGINT below discards a block not yet retired (seen: "0 packets captured, 26 received by filter").
  const dump = spawn(
    'timeout',
    [String(opts.boundSeconds ?? 60), 'tcpdump', '-Z', 'root', '-i', bridgeName(opts.instance), '--immediate-mode', '-U', '-n', '-s', '0', '-c', String(opts.maxPackets ?? 2000), '-w', file, opts.filter],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  dump.stderr.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => dump.on('close', () => r()));
  if (!(await pollUntil(async () => err.includes('listening on') || undefined, 15_000, 100))) {
    dump.kill('SIGINT');
    throw new Error(`tcpdump did not start: ${err}`);
  }
  try {
    await during();
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    dump.kill('SIGINT');
    await exited;
  }
  const read = (args: string[]) =>
    new Promise<string>((resolve) => {
      const c = spawn('tcpdump', ['-r', file, '-n', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.on('close', () => resolve(out));
    });
  const text = await read(['-A']);
  const handshakes = (await read(['tcp[((tcp[12]&0xf0)>>2)]=0x16'])).split('\n').filter(Boolean).length;
  const packets = (await read([])).split('\n').filter(Boolean).length;
  const summary = err.trim().split('\n').slice(-4).join(' | ');
  return { text, handshakes, packets, summary };
}
