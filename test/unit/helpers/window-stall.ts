/**
 * Both of a command's streams waiting for the SSH channel's window at once: the client reads nothing
 * until the server filled the window, then reads everything. ssh2's server side lost stderr's bytes
 * so (sh-server.ts, oneWriteAtATime); OpenSSH's sshd does not (test/integration/persistent-channel.test.ts).
 */
import type ssh2 from 'ssh2';
import { expect } from 'vitest';

/** ssh2's channel window (2 MiB): what the server may send before the client reads. */
const WINDOW = 2 * 1024 * 1024;
const PIECE = 65536;
const PIECES = 48;

/** Runs the command over `client` with a late reader; what arrived of each stream, and whether the channel ended (bounded: 30 s). */
export async function bothStreamsPastTheWindow(client: ssh2.Client): Promise<{ ended: boolean; out: number; err: number; expected: number }> {
  // 3 MiB on each stream, in alternating 64 KiB pieces: more than the window on each.
  const command = `i=0;while [ $i -lt ${PIECES} ];do head -c ${PIECE} /dev/zero;head -c ${PIECE} /dev/zero >&2;i=$((i+1));done`;
  const stream = await new Promise<ssh2.ClientChannel>((resolve, reject) => client.exec(command, (err, s) => (err ? reject(err) : resolve(s))));
  stream.pause();
  stream.stderr.pause();
  // Until the server stopped sending (the window is full; the client's own buffers take a little more).
  const buffered = () => stream.readableLength + stream.stderr.readableLength;
  let last = -1;
  for (let i = 0; i < 600 && (buffered() < WINDOW || buffered() !== last); i++) {
    last = buffered();
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(buffered()).toBeGreaterThanOrEqual(WINDOW);
  let out = 0;
  let err = 0;
  const closed = new Promise<boolean>((resolve) => {
    stream.on('data', (d: Buffer) => (out += d.length));
    stream.stderr.on('data', (d: Buffer) => (err += d.length));
    stream.on('close', () => resolve(true));
  });
  stream.resume();
  stream.stderr.resume();
  // A hang shows as false (all bytes normally arrive within a second or two).
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([closed, new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 30_000)))]);
  clearTimeout(timer);
  return { ended, out, err, expected: PIECE * PIECES };
}
