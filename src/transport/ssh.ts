import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { Host } from '../inventory/index.js';
import { ConnectionError } from '../util/errors.js';
import { quote } from '../util/quote.js';
import { fingerprint, hostPattern, keyTypeOf, knownKeysFor, recordKnownKey } from './known-hosts.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Data written to the command's stdin (how secrets reach a host: never in argv). */
  stdin?: string | Buffer;
  /** Run as the host's become user (default: the host's `become` setting). */
  become?: boolean;
  timeoutMs?: number;
}

/** A command started with its input and output as streams (a dump piped from one host into another). */
export interface RemoteProcess {
  /** The command's stdin: end() it to send EOF. */
  readonly stdin: NodeJS.WritableStream;
  readonly stdout: NodeJS.ReadableStream;
  /** Settles when the channel closed: the exit code and the last 4 KB of stderr. */
  readonly done: Promise<{ code: number; stderr: string }>;
  /** Close the channel: the command loses its stdin and stdout. */
  close(): void;
}

/** The small interface every connector shares: run, put, tunnel, close. */
export interface Connection {
  readonly hostName: string;
  readonly roundTrips: number;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Start a command whose stdin and stdout are streamed rather than buffered (nothing is kept here).
   * Optional: connectors that cannot stream (test doubles) leave it out, and what needs it fails.
   */
  spawn?(command: string, opts?: Pick<ExecOptions, 'become'>): Promise<RemoteProcess>;
  /** Open a TCP stream to address:port as seen from the host (for SQL tunnels and jump hosts). */
  forward(address: string, port: number): Promise<Duplex>;
  close(): void;
}

/** A dead link is detected after KEEPALIVE_MS × (KEEPALIVE_COUNT_MAX + 1) without an answer (20 s). */
const KEEPALIVE_MS = 5000;
const KEEPALIVE_COUNT_MAX = 3;

function describeConnectError(host: Host, err: Error & { level?: string; code?: string }, hostKeyProblem?: string): ConnectionError {
  const target = `${host.connection.user}@${host.address}:${host.connection.port}`;
  if (hostKeyProblem) return new ConnectionError(hostKeyProblem, 'hostkey', `check the host, then fix ${host.connection.knownHosts}`);
  if (err.level === 'client-timeout' || /Timed out/i.test(err.message))
    return new ConnectionError(`${target}: connection timed out after ${host.connection.connectTimeoutMs / 1000}s`, 'timeout');
  if (err.level === 'client-authentication')
    return new ConnectionError(`${target}: authentication failed (${authMethods(host)})`, 'auth', 'check identity_file, ssh_agent and user');
  if (err.code === 'ECONNREFUSED') return new ConnectionError(`${target}: connection refused`, 'socket');
  if (err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH') return new ConnectionError(`${target}: host unreachable`, 'socket');
  if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') return new ConnectionError(`${target}: address does not resolve`, 'dns');
  return new ConnectionError(`${target}: ${err.message}`, err.level === 'protocol' ? 'protocol' : 'socket');
}

function authMethods(host: Host): string {
  const m: string[] = [];
  if (host.connection.identityFile) m.push(`key ${host.connection.identityFile}`);
  if (host.connection.agent) m.push('ssh-agent');
  return m.join(', ') || 'no key and no agent';
}

export class SshConnection implements Connection {
  #roundTrips = 0;
  #closed: ConnectionError | undefined;
  #becomePassword: string | undefined;

  private constructor(
    private readonly client: Client,
    private readonly host: Host,
    private readonly via?: SshConnection,
  ) {
    client.on('close', () => {
      this.#closed ??= new ConnectionError(`${host.name}: connection closed`, 'closed');
    });
    client.on('error', (err: Error & { level?: string }) => {
      const why =
        err.level === 'client-timeout' && /keepalive/i.test(err.message)
          ? `no answer to ${KEEPALIVE_COUNT_MAX} keepalives ${KEEPALIVE_MS / 1000}s apart (link cut or host gone)`
          : err.message;
      this.#closed = new ConnectionError(`${host.name}: connection lost: ${why}`, 'closed');
    });
    const env = host.connection.becomePasswordEnv;
    this.#becomePassword = env ? process.env[env] : undefined;
  }

  get hostName(): string {
    return this.host.name;
  }
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** Connect with host-key verification against known_hosts; through a jump connection when given. */
  static async connect(host: Host, via?: SshConnection): Promise<SshConnection> {
    const c = host.connection;
    let privateKey: Buffer | undefined;
    if (c.identityFile) {
      try {
        privateKey = readFileSync(c.identityFile);
      } catch (err) {
        throw new ConnectionError(`${host.name}: cannot read identity file ${c.identityFile}: ${(err as NodeJS.ErrnoException).code}`, 'auth');
      }
    }
    const known = knownKeysFor(c.knownHosts, host.address, c.port);
    let hostKeyProblem: string | undefined;
    const config: ConnectConfig = {
      host: host.address,
      port: c.port,
      username: c.user,
      privateKey,
      agent: c.agent,
      readyTimeout: c.connectTimeoutMs,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      // Prefer key types we already know for this host, so a known host is never asked for an unknown type.
      algorithms: known.length
        ? { serverHostKey: [...new Set([...known.map((k) => k.type), 'ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-512', 'rsa-sha2-256'])] as never }
        : undefined,
      hostVerifier: (key: Buffer) => {
        const type = keyTypeOf(key);
        const b64 = key.toString('base64');
        const name = hostPattern(host.address, c.port);
        if (known.some((k) => k.revoked && k.key === b64)) {
          hostKeyProblem = `${host.name}: host key ${fingerprint(key)} for ${name} is marked @revoked in ${c.knownHosts}`;
          return false;
        }
        if (known.some((k) => !k.revoked && k.key === b64)) return true;
        if (known.some((k) => !k.revoked)) {
          hostKeyProblem =
            `${host.name}: HOST KEY CHANGED for ${name}: it now offers ${type} ${fingerprint(key)}, ` +
            `which is not the key recorded in ${c.knownHosts}; refusing to connect`;
          return false;
        }
        if (c.acceptNewHostKeys) {
          recordKnownKey(c.knownHosts, host.address, c.port, type, b64);
          return true;
        }
        hostKeyProblem = `${host.name}: unknown host key for ${name} (${type} ${fingerprint(key)}); it is not in ${c.knownHosts}`;
        return false;
      },
    };
    if (via) {
      try {
        config.sock = await via.forward(host.address, c.port);
      } catch (err) {
        throw new ConnectionError(`${host.name}: jump through ${via.hostName} failed: ${(err as Error).message}`, 'socket');
      }
    }
    const client = new Client();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        client.removeListener('ready', onReady);
        client.end();
        reject(describeConnectError(host, err, hostKeyProblem));
      };
      const onReady = () => {
        client.removeListener('error', onError);
        resolve();
      };
      client.once('ready', onReady);
      client.once('error', onError);
      client.connect(config);
    });
    return new SshConnection(client, host, via);
  }

  /** Wrap a command for sudo when the host is set to become another user. */
  private wrap(command: string, become: boolean): { cmd: string; stdinPrefix?: string } {
    const c = this.host.connection;
    if (!become || c.user === c.becomeUser) return { cmd: command };
    if (this.#becomePassword !== undefined) {
      // The password goes through stdin (sudo -S), never argv; the empty prompt keeps output clean.
      return { cmd: `sudo -S -p '' -H -u ${quote(c.becomeUser)} -- sh -c ${quote(command)}`, stdinPrefix: this.#becomePassword + '\n' };
    }
    return { cmd: `sudo -n -H -u ${quote(c.becomeUser)} -- sh -c ${quote(command)}` };
  }

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.#closed) return Promise.reject(this.#closed);
    const { cmd, stdinPrefix } = this.wrap(command, opts.become ?? this.host.connection.become);
    this.#roundTrips++;
    return new Promise<ExecResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      this.client.exec(cmd, (err: Error | undefined, stream: ClientChannel) => {
        if (err) {
          reject(this.#closed ?? new ConnectionError(`${this.host.name}: cannot open a channel: ${err.message}`, 'closed'));
          return;
        }
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code: number | null = null;
        stream.on('data', (d: Buffer) => out.push(d));
        stream.stderr.on('data', (d: Buffer) => errOut.push(d));
        stream.on('exit', (c: number | null, signal?: string) => {
          code = c ?? (signal ? 128 : 255);
        });
        stream.on('close', () => {
          if (timer) clearTimeout(timer);
          if (code === null && this.#closed) {
            reject(this.#closed);
            return;
          }
          resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), code: code ?? 255 });
        });
        if (opts.timeoutMs) {
          timer = setTimeout(() => {
            stream.close();
            reject(new ConnectionError(`${this.host.name}: command timed out after ${opts.timeoutMs! / 1000}s`, 'timeout'));
          }, opts.timeoutMs);
        }
        if (stdinPrefix) stream.write(stdinPrefix);
        if (opts.stdin !== undefined) stream.write(opts.stdin);
        stream.end();
      });
    });
  }

  spawn(command: string, opts: Pick<ExecOptions, 'become'> = {}): Promise<RemoteProcess> {
    if (this.#closed) return Promise.reject(this.#closed);
    // Unlike exec(), never the become password on a stream: where sudo does not ask for it (NOPASSWD,
    // a cached timestamp) it would be the first line of the command's input. sudo -n fails clearly
    // where a password is needed.
    const c = this.host.connection;
    const become = (opts.become ?? c.become) && c.user !== c.becomeUser;
    const cmd = become ? `sudo -n -H -u ${quote(c.becomeUser)} -- sh -c ${quote(command)}` : command;
    this.#roundTrips++;
    return new Promise<RemoteProcess>((resolve, reject) => {
      this.client.exec(cmd, (err: Error | undefined, channel: ClientChannel) => {
        if (err) {
          reject(this.#closed ?? new ConnectionError(`${this.host.name}: cannot open a channel: ${err.message}`, 'closed'));
          return;
        }
        let stderr = '';
        let code: number | null = null;
        channel.stderr.on('data', (d: Buffer) => {
          stderr = (stderr + d.toString('utf8')).slice(-4096);
        });
        channel.on('exit', (exitCode: number | null, signal?: string) => {
          code = exitCode ?? (signal ? 128 : 255);
        });
        const done = new Promise<{ code: number; stderr: string }>((res, rej) => {
          channel.on('close', () => (code === null && this.#closed ? rej(this.#closed) : res({ code: code ?? 255, stderr })));
        });
        done.catch(() => undefined); // the caller awaits it; no unhandled rejection meanwhile
        resolve({ stdin: channel, stdout: channel, done, close: () => channel.close() });
      });
    });
  }

  forward(address: string, port: number): Promise<Duplex> {
    if (this.#closed) return Promise.reject(this.#closed);
    this.#roundTrips++;
    return new Promise((resolve, reject) => {
      this.client.forwardOut('127.0.0.1', 0, address, port, (err, stream) => {
        if (err) reject(new ConnectionError(`${this.host.name}: cannot open a tunnel to ${address}:${port}: ${err.message}`, 'socket'));
        else resolve(stream);
      });
    });
  }

  get alive(): boolean {
    return !this.#closed;
  }

  close(): void {
    this.#closed ??= new ConnectionError(`${this.host.name}: connection closed`, 'closed');
    this.client.end();
  }
}
