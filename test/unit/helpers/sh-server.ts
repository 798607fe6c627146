/**
 * An in-process SSH server (ssh2) whose exec requests run in this machine's sh: any user, any key is
 * accepted. It counts the connections it has open at once (`peakOpen`) and every connection it
 * accepted, so tests can see how many hosts a command holds connected; every inventory host of a
 * test can be a name for this one server. Shared by the fake sudo host (transport/fake-host.ts) and
 * the forks tests (executor/forks-bound.test.ts, cli/facts-ping-forks.test.ts).
 */
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
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
        child.stdout.pipe(stream, { end: false });
        child.stderr.pipe(stream.stderr, { end: false });
        let pending = 3;
        let code = 0;
        const done = () => {
          if (--pending > 0) return;
          stream.exit(code);
          stream.end();
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
