/**
 * The bench's delaying relay (bench/relay.mjs): each direction gets its own fixed delay, bytes arrive
 * intact and in order, an orderly end is relayed after the data. The delay is checked with an
 * injected clock and timers (no wall-clock assertion); a real-socket round trip checks the bytes.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { delayedPipe, parseMap, startRelay } from '../../../bench/relay.mjs';

/** A readable/writable stand-in: what was written, when (by the fake clock), and whether it ended. */
class FakeSocket extends EventEmitter {
  written: Array<{ at: number; data: string }> = [];
  ended: number | undefined;
  paused = false;
  constructor(private clock: () => number, private accept = true) {
    super();
  }
  write(chunk: Buffer): boolean {
    this.written.push({ at: this.clock(), data: chunk.toString() });
    return this.accept;
  }
  end(): void {
    this.ended = this.clock();
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
}

describe('delayedPipe', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('delivers each chunk exactly the delay after it was read, in order, then the end', () => {
    vi.useFakeTimers({ now: 0 });
    const now = () => Date.now();
    const from = new FakeSocket(now);
    const to = new FakeSocket(now);
    delayedPipe(from, to, 50, now);
    from.emit('data', Buffer.from('a'));
    vi.advanceTimersByTime(10);
    from.emit('data', Buffer.from('b'));
    from.emit('end');
    vi.advanceTimersByTime(39);
    expect(to.written).toEqual([]); // 49 ms after "a": nothing yet
    vi.advanceTimersByTime(1);
    expect(to.written).toEqual([{ at: 50, data: 'a' }]);
    expect(to.ended).toBeUndefined();
    vi.advanceTimersByTime(10);
    expect(to.written).toEqual([{ at: 50, data: 'a' }, { at: 60, data: 'b' }]);
    expect(to.ended).toBe(60); // the end follows the last chunk, never overtakes it
  });

  it('adds latency, not throttling: a burst arrives together, one delay later', () => {
    vi.useFakeTimers({ now: 0 });
    const now = () => Date.now();
    const from = new FakeSocket(now);
    const to = new FakeSocket(now);
    delayedPipe(from, to, 25, now);
    for (let i = 0; i < 100; i++) from.emit('data', Buffer.from(String(i % 10)));
    vi.advanceTimersByTime(25);
    expect(to.written).toHaveLength(100);
    expect(new Set(to.written.map((w) => w.at))).toEqual(new Set([25]));
  });

  it('each direction has its own delay (a round trip is the sum)', () => {
    vi.useFakeTimers({ now: 0 });
    const now = () => Date.now();
    const client = new FakeSocket(now);
    const server = new FakeSocket(now);
    delayedPipe(client, server, 30, now); // client → server
    delayedPipe(server, client, 20, now); // server → client
    client.emit('data', Buffer.from('ping'));
    vi.advanceTimersByTime(30);
    expect(server.written).toEqual([{ at: 30, data: 'ping' }]);
    server.emit('data', Buffer.from('pong')); // the server answers at once
    vi.advanceTimersByTime(19);
    expect(client.written).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(client.written).toEqual([{ at: 50, data: 'pong' }]);
  });

  it('pauses the sender while the receiver is full and resumes it on drain', () => {
    vi.useFakeTimers({ now: 0 });
    const now = () => Date.now();
    const from = new FakeSocket(now);
    const to = new FakeSocket(now, false);
    delayedPipe(from, to, 5, now);
    from.emit('data', Buffer.from('x'));
    vi.advanceTimersByTime(5);
    expect(from.paused).toBe(true);
    to.emit('drain');
    expect(from.paused).toBe(false);
  });
});

describe('parseMap', () => {
  it('reads LISTENPORT=ADDRESS:PORT pairs and refuses anything else', () => {
    expect([...parseMap('40010=10.85.0.10:22,40011=10.85.0.11:2222')]).toEqual([
      [40010, { host: '10.85.0.10', port: 22 }],
      [40011, { host: '10.85.0.11', port: 2222 }],
    ]);
    expect(() => parseMap('40010=host.example:22')).toThrow(/bad --map entry/);
  });
});

describe('startRelay over real sockets', () => {
  it('relays every byte intact both ways through a delayed connection, and the end', async () => {
    // An echo server that also reports how many bytes it saw when the client ends.
    const echo = net.createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (d) => {
        n += d.length;
        s.write(d);
      });
      s.on('end', () => s.end(`|${n}`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const relay = await startRelay({ map: new Map([[0, { host: '127.0.0.1', port: echoPort }]]), delayMs: 5 });
    try {
      const payload = randomBytes(1 << 20); // 1 MiB: many chunks, backpressure included
      const received = await new Promise<Buffer>((resolve, reject) => {
        const parts: Buffer[] = [];
        const c = net.connect({ host: '127.0.0.1', port: relay.ports[0], allowHalfOpen: true });
        const timer = setTimeout(() => reject(new Error('relay did not finish within 30 s')), 30_000);
        c.on('data', (d) => parts.push(d));
        c.on('end', () => {
          clearTimeout(timer);
          c.end();
          resolve(Buffer.concat(parts));
        });
        c.on('error', reject);
        c.end(payload);
      });
      expect(received.subarray(0, payload.length).equals(payload)).toBe(true);
      expect(received.subarray(payload.length).toString()).toBe(`|${payload.length}`);
    } finally {
      await relay.close();
      await new Promise<void>((r) => echo.close(() => r()));
    }
  });
});
