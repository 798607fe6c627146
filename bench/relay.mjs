#!/usr/bin/env node
// A delaying TCP relay: what a real network adds to every round trip, without netem (this kernel has
// none). Each listening port forwards to one target; every chunk read on either side is queued with
// its due time (now + the one-way delay) and written when due, in order. That is latency without
// throttling: a burst of chunks arrives a fixed delay later, as fast as it left. A round-trip time
// of R is a one-way delay of R/2 each way.
//
//   node bench/relay.mjs --delay-ms 25 --map 40010=10.85.0.10:22,40011=10.85.0.11:22
//
// prints "relay: ready" on stdout once every port listens, and runs until SIGTERM/SIGINT.
// scripts/bench.mjs runs it as an unprivileged user and sends the SSH traffic for the lab's hosts to
// it with iptables REDIRECT rules that skip that user's own connections (see bench/latency.mjs).
import net from 'node:net';

/**
 * One direction of a connection: chunks from `from` reach `to` `delayMs` later, in order; the end
 * of `from` reaches `to` after the last chunk. When `to` cannot keep up, `from` is paused (the
 * receiver's pace, never ours).
 */
export function delayedPipe(from, to, delayMs, now = () => performance.now()) {
  const queue = []; // { due, chunk } or { due, end: true }
  let timer;
  const flush = () => {
    timer = undefined;
    const t = now();
    while (queue.length && queue[0].due <= t) {
      const item = queue.shift();
      if (item.end) {
        to.end();
        return;
      }
      if (!to.write(item.chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    }
    if (queue.length) timer = setTimeout(flush, Math.max(0, queue[0].due - now()));
  };
  const push = (item) => {
    queue.push(item);
    if (!timer) timer = setTimeout(flush, Math.max(0, queue[0].due - now()));
  };
  from.on('data', (chunk) => push({ due: now() + delayMs, chunk }));
  from.on('end', () => push({ due: now() + delayMs, end: true }));
  return {
    /** Chunks still waiting for their due time. */
    pending: () => queue.length,
    cancel: () => {
      clearTimeout(timer);
      queue.length = 0;
    },
  };
}

/**
 * Listens on every `port` of `map` (port → { host, port }) and relays each connection to its target
 * with `delayMs` added to each direction. Resolves once every port listens.
 */
export async function startRelay({ map, delayMs, listenHost = '127.0.0.1' }) {
  const servers = [];
  const sockets = new Set();
  for (const [listenPort, target] of map) {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
      const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
      sockets.add(client).add(upstream);
      const pipes = [delayedPipe(client, upstream, delayMs), delayedPipe(upstream, client, delayMs)];
      // A reset or error on either side ends both, as it would end the one connection they stand for.
      // An orderly end (FIN) is relayed like data, after the delay; each socket closes by itself once
      // both of its directions have ended.
      const abort = () => {
        pipes.forEach((p) => p.cancel());
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) {
        s.on('error', abort).on('close', (hadError) => {
          sockets.delete(s);
          if (hadError) abort();
        });
      }
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(listenPort, listenHost, () => resolve());
    });
    servers.push(server);
  }
  return {
    ports: servers.map((s) => s.address().port),
    close: () =>
      Promise.all(
        servers.map((s) => {
          for (const sock of sockets) sock.destroy();
          return new Promise((resolve) => s.close(() => resolve()));
        }),
      ),
  };
}

/** "40010=10.85.0.10:22,40011=10.85.0.11:22" → Map(40010 → { host, port }). */
export function parseMap(text) {
  const map = new Map();
  for (const item of text.split(',').filter(Boolean)) {
    const m = /^(\d+)=([0-9.]+):(\d+)$/.exec(item.trim());
    if (!m) throw new Error(`relay: bad --map entry "${item}" (expected LISTENPORT=ADDRESS:PORT)`);
    map.set(Number(m[1]), { host: m[2], port: Number(m[3]) });
  }
  return map;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const opt = (name) => {
    const i = args.indexOf(`--${name}`);
    if (i < 0 || args[i + 1] === undefined) throw new Error(`relay: --${name} is required`);
    return args[i + 1];
  };
  const delayMs = Number(opt('delay-ms'));
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new Error('relay: --delay-ms must be a number ≥ 0');
  const relay = await startRelay({ map: parseMap(opt('map')), delayMs });
  process.stdout.write(`relay: ready on ${relay.ports.join(',')} (${delayMs} ms each way)\n`);
  const stop = () => relay.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
