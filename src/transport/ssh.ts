import { connect as tcpConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, type AnyAuthMethod, type ClientChannel, type ConnectConfig, type ParsedKey } from 'ssh2';
import type { Host } from '../inventory/index.js';
import { ConnectionError } from '../util/errors.js';
import { HostKeyCheck } from './hostkeys/index.js';
import { ignoreHostKeysAnnouncement } from './hostkeys/server-notice.js';
import { registerSecret } from '../util/secrets.js';
import { boundedScript, CommandTimeoutError, controllerBoundMs, DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_PROBE_TIMEOUT_MS, newMarkers, remoteCommand, type SudoMode } from './remote-command.js';
import { runSession, type Channel, type SessionResult } from './session.js';
import { PersistentShell } from './channel.js';
import { identityKey, type IdentityKey } from './identity-key.js';

/**
 * How later commands of a connection travel: 'persistent' (the default), one long-lived channel per
 * identity carrying framed scripts (one round trip; see channel.ts); or 'exec', a channel each (three
 * round trips; sudo's log records each command). The host's `channel` (inventory, else
 * $PROVISION_CHANNEL: inventory/connection.ts); the first command of a connection always goes by exec.
 */
export type ChannelSetting = 'exec' | 'persistent';

export function channelSetting(host: Host): ChannelSetting {
  return host.connection.channel ?? 'persistent';
}

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
  /** Where it becomes: this user instead of the host's become_user (a task's become_user: sudo -H -u NAME). */
  becomeUser?: string;
  /**
   * Bound on the host (default: the host's command_timeout, else 10 min). When it runs out the host
   * stops the command's whole process tree (TERM, KILL a tenth of the bound later, 1 to 5 s) and exec rejects with a
   * CommandTimeoutError; the controller gives up on the channel a little later (a host that cannot
   * end it).
   */
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
  /** Bound of a batch of state reads on this host (its probe_timeout). */
  readonly probeTimeoutMs: number;
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

/** Long-lived readers per connection (channel.ts); further identities go by exec. */
const MAX_READERS = 2;

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
  /** Settles when the socket has closed (see ended()). */
  readonly #ended: Promise<void>;
  #becomePassword: string | undefined;
  /** Whether sudo asked for the password last time: when it did not, the next command tries without (no wait). */
  #sudoAskedLast = true;
  /** Set once sudo refused the password: never tried again on this connection (no lockout). */
  #becomeRefused: ConnectionError | undefined;
  /** Commands sent so far; from the second on, 'persistent' sends them through a shell of #shells. */
  #commands = 0;
  /** The long-lived reader per identity ('login', 'become:USER'). */
  readonly #shells = new Map<string, PersistentShell>();
  readonly #channel: ChannelSetting;

  private constructor(
    private readonly client: Client,
    private readonly host: Host,
    private readonly via?: SshConnection,
    channel: ChannelSetting = channelSetting(host),
  ) {
    this.#channel = channel;
    this.#ended = new Promise((resolve) => client.once('close', () => resolve()));
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
    this.#becomePassword = host.connection.becomePassword?.reveal() ?? (env ? process.env[env] : undefined);
    // Masked in every output from the moment it is read (an error, a command's output).
    if (this.#becomePassword) registerSecret(this.#becomePassword);
  }

  get hostName(): string {
    return this.host.name;
  }
  get roundTrips(): number {
    return this.#roundTrips;
  }
  get probeTimeoutMs(): number {
    return this.host.connection.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  }

  /** Connect with host-key verification against known_hosts; through a jump connection when given. */
  static async connect(host: Host, via?: SshConnection, channel?: ChannelSetting): Promise<SshConnection> {
    const c = host.connection;
    let privateKey: ParsedKey | undefined;
    if (c.identityFile) {
      // Read and parsed once for all the hosts that use it, again only when the file changed (identity-key.ts).
      let key: IdentityKey;
      try {
        key = identityKey(c.identityFile, c.identityPassphrase?.reveal());
      } catch (err) {
        throw new ConnectionError(`${host.name}: cannot read identity file ${c.identityFile}: ${(err as NodeJS.ErrnoException).code}`, 'auth');
      }
      if (key.kind === 'unparsable') throw new ConnectionError(`${host.name}: cannot parse identity file ${c.identityFile}: ${key.why}`, 'auth');
      // A locked key without its passphrase: the agent's unlocked copy is used (inventory/identity.ts).
      if (key.kind === 'locked' && !c.agent) {
        throw new ConnectionError(`${host.name}: identity file ${c.identityFile} is protected by a passphrase: add it to ssh-agent, or run on a terminal to be asked for it`, 'auth');
      }
      if (key.kind === 'key') privateKey = key.key;
    }
    // Host keys (known_hosts, @revoked, @cert-authority, accept_new_host_keys): hostkeys/verifier.ts.
    // A CA-only host's certificate is fetched over a stream of its own, the same way ssh2's goes.
    const openStream = (): Promise<Duplex> => (via ? via.forward(host.address, c.port) : Promise.resolve(tcpConnect({ host: host.address, port: c.port })));
    let hostKeys: HostKeyCheck;
    try {
      hostKeys = await HostKeyCheck.prepare(
        { label: host.name, address: host.address, port: c.port, knownHosts: c.knownHosts, acceptNew: c.acceptNewHostKeys, timeoutMs: c.connectTimeoutMs },
        openStream,
      );
    } catch (err) {
      throw err instanceof ConnectionError ? err : describeConnectError(host, err as Error);
    }
    const config: ConnectConfig = {
      host: host.address,
      port: c.port,
      username: c.user,
      agent: c.agent,
      readyTimeout: c.connectTimeoutMs,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      algorithms: { serverHostKey: hostKeys.algorithms as never },
      hostVerifier: (key: Buffer) => hostKeys.verify(key),
    };
    // The methods we have, in order, without ssh2's opening "none" attempt: that one only asks the
    // server which methods it takes, one network round trip of every connect (100 ms at 100 ms RTT).
    // The key goes parsed (ssh2 would parse it again from a buffer at every connect).
    const methods: AnyAuthMethod[] = [
      ...(privateKey ? [{ type: 'publickey' as const, username: c.user, key: privateKey }] : []),
      ...(c.agent ? [{ type: 'agent' as const, username: c.user, agent: c.agent }] : []),
    ];
    if (methods.length) config.authHandler = methods;
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
        reject(describeConnectError(host, err, hostKeys.problem));
      };
      const onReady = () => {
        client.removeListener('error', onError);
        resolve();
      };
      client.once('ready', onReady);
      // `on`, not `once`: after a failed connect ssh2 can emit a second error ("Connection lost before
      // handshake" once a timed-out socket closes); with no listener left, it would end the process.
      client.on('error', onError);
      client.connect(config);
      ignoreHostKeysAnnouncement(client);
    });
    return new SshConnection(client, host, via, channel);
  }

  /** How this command gets past sudo (see SudoMode). */
  private sudoMode(become: boolean, user = this.host.connection.becomeUser): SudoMode {
    const c = this.host.connection;
    if (!become || c.user === user) return 'none';
    if (this.#becomePassword === undefined) return 'no-password';
    return this.#sudoAskedLast ? 'prompt' : 'try-without-password';
  }

  /**
   * Run a command on the host, bounded (opts.timeoutMs, else the host's command_timeout): when the
   * bound runs out the host stops the command and everything it started, and this rejects with a
   * CommandTimeoutError. Under sudo with a password, the password answers sudo's own prompt only.
   */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.#closed) throw this.#closed;
    const c = this.host.connection;
    const boundMs = opts.timeoutMs ?? c.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const setting = opts.timeoutMs ? 'its bound' : 'command_timeout';
    const user = opts.becomeUser ?? c.becomeUser;
    let mode = this.sudoMode(opts.become ?? c.become, user);
    if (mode === 'prompt' || mode === 'try-without-password') {
      if (this.#becomeRefused) throw this.#becomeRefused;
      if (/[\r\n]/.test(this.#becomePassword!)) {
        throw new ConnectionError(`${this.host.name}: the become password in $${c.becomePasswordEnv} contains a line break; sudo reads one line`, 'auth');
      }
    }
    if (this.#channel === 'persistent' && this.#commands++ > 0) {
      const viaShell = await this.runInShell(command, mode, boundMs, setting, opts.stdin, user);
      if (viaShell) return viaShell;
    }
    let r = await this.run(command, mode, boundMs, setting, opts.stdin, user);
    if (mode === 'try-without-password' && !r.started) {
      // sudo wants the password again (its timestamp ran out, sudoers changed): the command did not run.
      mode = 'prompt';
      r = await this.run(command, mode, boundMs, setting, opts.stdin, user);
    }
    if (mode === 'prompt') this.#sudoAskedLast = r.asked;
    if (r.passwordRefused) throw this.refusedPassword(user);
    if (r.sudoSilent) throw this.silentSudo(r.stderr);
    if (r.timedOut) throw new CommandTimeoutError(describeCommand(command), boundMs, setting, false, r.stdout, r.stderr);
    return { stdout: r.stdout, stderr: r.stderr, code: r.code ?? 255 };
  }

  /** sudo asked twice: the password is wrong. Kept, so it is never tried again on this connection (no lockout). */
  private refusedPassword(user: string): ConnectionError {
    const c = this.host.connection;
    this.#becomeRefused = new ConnectionError(
      `${this.host.name}: sudo refused the become password (from $${c.becomePasswordEnv}) for ${c.user}; nothing was run as ${user}`,
      'auth',
      `check ${c.becomePasswordEnv}; it was tried once on this host, not again`,
    );
    return this.#becomeRefused;
  }

  private silentSudo(stderr: string): ConnectionError {
    return new ConnectionError(
      `${this.host.name}: sudo neither asked for the password with provision's prompt nor ran the command` +
        (stderr.trim() ? `; it printed: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''),
      'auth',
      'sudo may ask with a prompt of its own (a PAM module): provision answers only its own prompt',
    );
  }

  /**
   * The command through the identity's long-lived reader (channel.ts): the same bounded script, the
   * same result or error as exec. undefined: the reader did not start or is busy with another
   * command (nothing ran): the caller sends it by exec.
   */
  private async runInShell(command: string, mode: SudoMode, boundMs: number, setting: string, stdin: string | Buffer | undefined, becomeUser: string): Promise<ExecResult | undefined> {
    const c = this.host.connection;
    const identity = mode === 'none' ? 'login' : `become:${becomeUser}`;
    let shell = this.#shells.get(identity);
    if (shell?.busy) return undefined;
    if (!shell || shell.dead) {
      // Each reader holds one of the host's sessions (sshd's MaxSessions, 10 by default, 4 in our
      // hardened sshd) for the whole connection: a third identity goes by exec, which gives it back.
      if ([...this.#shells.values()].filter((s) => !s.dead).length >= MAX_READERS) return undefined;
      shell = new PersistentShell(mode, becomeUser, this.#becomePassword, 3 * c.connectTimeoutMs, (cmd) => this.openChannel(cmd));
      this.#shells.set(identity, shell);
    }
    const markers = newMarkers();
    const out = await shell.run(boundedScript(command, boundMs / 1000, markers), stdin, controllerBoundMs(boundMs));
    switch (out.kind) {
      case 'not-started':
        if (this.#closed) throw this.#closed;
        return undefined;
      case 'refused':
        throw this.refusedPassword(becomeUser);
      case 'silent':
        throw this.silentSudo(out.stderr);
      case 'stuck':
        this.#roundTrips++;
        throw new CommandTimeoutError(describeCommand(command), boundMs, setting, true, '', '');
      case 'lost':
        // As an exec whose channel closed without an exit status.
        this.#roundTrips++;
        if (this.#closed) throw this.#closed;
        return { stdout: out.stdout, stderr: out.stderr, code: 255 };
      case 'done': {
        this.#roundTrips++;
        const timedOutLine = `\n${markers.timedOut}\n`;
        if (out.stderr.includes(timedOutLine)) {
          throw new CommandTimeoutError(describeCommand(command), boundMs, setting, false, out.stdout, out.stderr.split(timedOutLine).join(''));
        }
        return { stdout: out.stdout, stderr: out.stderr, code: out.code };
      }
    }
  }

  /** A channel running `command`, as session.ts and channel.ts see one. */
  private openChannel(command: string): Promise<Channel> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.client.exec(command, (err: Error | undefined, stream: ClientChannel) => {
        if (err) reject(this.#closed ?? new ConnectionError(`${this.host.name}: cannot open a channel: ${err.message}`, 'closed'));
        else resolve(channelOf(stream));
      });
    });
  }

  /** One channel: the bounded script in sudo's mode; settles when the channel closes, or when the controller's own bound runs out. */
  private run(command: string, mode: SudoMode, boundMs: number, setting: string, stdin: string | Buffer | undefined, user: string): Promise<SessionResult> {
    if (this.#closed) return Promise.reject(this.#closed);
    const markers = newMarkers();
    const cmd = remoteCommand(boundedScript(command, boundMs / 1000, markers), mode, user, markers);
    this.#roundTrips++;
    return new Promise<SessionResult>((resolve, reject) => {
      let settled = false;
      let channel: ClientChannel | undefined;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        f();
      };
      const timer = setTimeout(() => {
        channel?.close();
        settle(() => reject(new CommandTimeoutError(describeCommand(command), boundMs, setting, true, '', '')));
      }, controllerBoundMs(boundMs));
      this.client.exec(cmd, (err: Error | undefined, stream: ClientChannel) => {
        if (err) {
          settle(() => reject(this.#closed ?? new ConnectionError(`${this.host.name}: cannot open a channel: ${err.message}`, 'closed')));
          return;
        }
        channel = stream;
        const session = runSession(
          channelOf(stream),
          mode,
          markers,
          this.#becomePassword,
          stdin,
          // Three times what a login may take (30 s by default): sudo may look the user up in LDAP.
          3 * this.host.connection.connectTimeoutMs,
        );
        void session.then((r) => settle(() => (r.code === null && this.#closed ? reject(this.#closed) : resolve(r))));
      });
    });
  }

  spawn(command: string, opts: Pick<ExecOptions, 'become'> = {}): Promise<RemoteProcess> {
    if (this.#closed) return Promise.reject(this.#closed);
    // Never the become password on a stream (its input is the command's from the first byte): sudo -n,
    // which fails clearly where a password is needed. No bound either: a seed takes what it takes.
    const c = this.host.connection;
    const mode: SudoMode = this.sudoMode(opts.become ?? c.become) === 'none' ? 'none' : 'no-password';
    const cmd = remoteCommand(command, mode, c.becomeUser, newMarkers());
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

  /** Settles once the connection's socket has closed (after close(): its buffers are free to go). */
  ended(): Promise<void> {
    return this.#ended;
  }
}

function channelOf(stream: ClientChannel): Channel {
  return {
    write: (d) => stream.write(d),
    end: () => stream.end(),
    close: () => stream.close(),
    onStdout: (cb) => stream.on('data', cb),
    onStderr: (cb) => stream.stderr.on('data', cb),
    onExit: (cb) => stream.on('exit', cb),
    onClose: (cb) => stream.on('close', cb),
  };
}

/** A command as named in a timeout message: its first line. */
function describeCommand(command: string): string {
  const first = command.trim().split('\n')[0]!;
  return `command \`${first.length > 120 ? `${first.slice(0, 117)}...` : first}\``;
}
