/**
 * An in-process SSH server (ssh2) whose exec requests run in this machine's sh: any user, any key is
 * accepted. It counts the connections it has open at once (`peakOpen`) and every connection it
 * accepted, so tests can see how many hosts a command holds connected; every inventory host of a
 * test can be a name for this one server. Shared by the fake sudo host (transport/fake-host.ts) and
 * the forks tests (executor/forks-bound.test.ts, cli/facts-ping-forks.test.ts).
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import ssh2 from 'ssh2';
import { ed25519KeyPair } from '../../../src/util/ssh-keys.ts';

export interface ShServerOptions {
  /** The environment commands run with (default: PATH and LC_ALL=C). */
  env?: NodeJS.ProcessEnv;
  /** Called with each exec request's command line; `false` leaves it accepted and never answered (a stuck host). */
  onExec?: (command: string) => boolean | void;
  /** Called with each connection as it is accepted (to watch or script what the server does). */
  onConnection?: (client: ssh2.Connection) => void;
}

export interface ShServer {
  readonly port: number;
  /** Connections open now. */
  readonly open: number;
  /** The most connections open at once since the last resetCounts(). */
  readonly peakOpen: number;
  /** Connections accepted since the last resetCounts(). */
  readonly accepted: number;
  resetCounts(): void;
  close(): Promise<void>;
}

/** Bytes queued for the channel above which the command's pipes are paused (its pace, not ours). */
const QUEUE_HIGH = 1024 * 1024;

/**
 * A command's stdout and stderr into its channel, one write at a time, in the order they came.
 * ssh2's server side keeps one pending write per stream when the client's window is full, and when
 * the window opens again it resumes only one of them (server.js, CHANNEL_WINDOW_ADJUST: stdout's,
 * else stderr's): with both waiting, stderr's write never completed and its bytes were dropped at
 * the channel's end (sh-server-window.test.ts; the flaky 3 MB case of persistent-channel.test.ts).
 * OpenSSH's sshd sends both streams from one loop against the one window: only this harness needs it.
 */
function oneWriteAtATime(sources: Readable[]) {
  const queue: { to: Writable; data: Buffer }[] = [];
  let queued = 0;
  let writing = false;
  let onDrained: (() => void) | undefined;
  const pump = () => {
    if (writing) return;
    const next = queue.shift();
    if (!next) {
      onDrained?.();
      return;
    }
    writing = true;
    next.to.write(next.data, () => {
      writing = false;
      queued -= next.data.length;
      if (queued < QUEUE_HIGH) for (const s of sources) s.resume();
      pump();
    });
  };
  return {
    write(to: Writable, data: Buffer): void {
      queue.push({ to, data });
      queued += data.length;
      if (queued >= QUEUE_HIGH) for (const s of sources) s.pause();
      pump();
    },
    drained(): Promise<void> {
      if (!writing && queue.length === 0) return Promise.resolve();
      return new Promise((resolve) => (onDrained = resolve));
    },
  };
}

export async function shServer(opts: ShServerOptions = {}): Promise<ShServer> {
  let open = 0;
  let peakOpen = 0;
  let accepted = 0;
  const env = opts.env ?? { PATH: process.env.PATH, LC_ALL: 'C' };
  const server = new ssh2.Server({ hostKeys: [ed25519KeyPair().private] }, (client) => {
    accepted++;
    peakOpen = Math.max(peakOpen, ++open);
    opts.onConnection?.(client);
    client.on('close', () => open--);
    client.on('error', () => {});
    client.on('authentication', (ctx) => ctx.accept());
    client.on('session', (accept) => {
      accept().on('exec', (acceptExec, _reject, info) => {
        const stream = acceptExec();
        if (opts.onExec?.(info.command) === false) return;
        const child = spawn('sh', ['-c', info.command], { env, stdio: ['pipe', 'pipe', 'pipe'] });
        stream.pipe(child.stdin);
        child.stdin.on('error', () => {});
        const output = oneWriteAtATime([child.stdout, child.stderr]);
        child.stdout.on('data', (d: Buffer) => output.write(stream, d));
        child.stderr.on('data', (d: Buffer) => output.write(stream.stderr, d));
        let pending = 3;
        let code = 0;
        const done = () => {
          if (--pending > 0) return;
          // Only once every byte of both streams went out: ending the channel drops what is still queued.
          void output.drained().then(() => {
            stream.exit(code);
            stream.end();
          });
        };
        child.stdout.on('end', done);
        child.stderr.on('end', done);
        child.on('exit', (c) => {
          code = c ?? 255;
          done();
        });
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    get open() {
      return open;
    },
    get peakOpen() {
      return peakOpen;
    },
    get accepted() {
      return accepted;
    },
    resetCounts() {
      peakOpen = open;
      accepted = 0;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
