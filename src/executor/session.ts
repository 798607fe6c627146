import { gatherFacts, gatherFactsRemembering, runProbes, type Facts, type ProbeResult, type RawProbe, type ReadMemory, type RememberOptions } from '../facts/index.js';
import { STATE_READ_FILE } from '../host-paths.js';
import type { Host, Inventory } from '../inventory/index.js';
import type { Connection, ExecOptions, ExecResult, RemoteProcess } from '../transport/index.js';
import type { Duplex } from 'node:stream';
import { ConnectionPool } from './connect.js';

/**
 * What the executor needs of one host: its facts, one batched read of many probes, commands, and
 * a check that a fresh login still works. Over SSH it is a connection (sessionOf); a unit test
 * gives a recording fake that answers probes by key.
 */
export interface HostSession {
  /** Every fact, in one round trip. */
  facts(): Promise<Facts>;
  /** These probes in one round trip, as root; a ProbeTimeoutError when one outlives probe_timeout. */
  read(probes: readonly RawProbe[]): Promise<Map<string, ProbeResult>>;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** A process on the host with streamed stdin/stdout (a 'call' step); absent where it cannot stream. */
  spawn?(command: string, opts?: Pick<ExecOptions, 'become'>): Promise<RemoteProcess>;
  /**
   * Open a NEW connection to the host, run a trivial command, close it; rejects with a
   * ConnectionError when that fails (used after a change that could lock the control machine out).
   */
  freshLogin?(): Promise<void>;
  /** Another inventory host's connection, from the run's pool (a replica reading its primary). */
  peer?(hostName: string): Promise<Connection>;
  /** Bound of a batch of state reads on this host (its probe_timeout). */
  readonly probeTimeoutMs: number;
  /** Round trips so far (what `npm run bench` reports). */
  readonly roundTrips: number;
  /**
   * Close the host's connection while the host waits (the next exec or read opens a new one), so
   * a run of more hosts than forks holds at most forks connections. Absent: nothing to release.
   */
  release?(): Promise<void>;
}

/** Opens sessions to hosts; closes every one it opened at the end of the run. */
export interface Connector {
  open(host: Host): Promise<HostSession>;
  close(): Promise<void>;
}

/**
 * A session over a connection: probes through the batch script (facts/batch.ts). With `remember`,
 * the facts' round trip also runs the state read the host kept from the last run, and the first
 * read of the session (every play's state, HostRun.prepare) takes its answers when it is the same
 * script, else it reads and keeps its own script (facts/remembered.ts): a converged host costs one
 * round trip after connecting.
 */
export function sessionOf(
  conn: Connection,
  freshLogin?: () => Promise<void>,
  peer?: (hostName: string) => Promise<Connection>,
  remember?: RememberOptions,
  release?: () => Promise<void>,
): HostSession {
  let firstRead: ReadMemory | undefined = remember && { keepIn: remember.store ? remember.file : undefined };
  return {
    facts: async () => {
      if (!remember || !firstRead) return gatherFacts(conn);
      const { facts, remembered } = await gatherFactsRemembering(conn, remember.file);
      firstRead.remembered = remembered;
      return facts;
    },
    read: (probes) => {
      const memory = firstRead;
      firstRead = undefined;
      return runProbes(conn, probes, true, memory);
    },
    exec: (command, opts) => conn.exec(command, opts),
    spawn: conn.spawn ? (command, opts) => conn.spawn!(command, opts) : undefined,
    freshLogin,
    peer,
    release,
    get probeTimeoutMs() {
      return conn.probeTimeoutMs;
    },
    get roundTrips() {
      return conn.roundTrips;
    },
  };
}

/**
 * A host's connection that can be released while the host waits and is opened again (through the
 * pool, host key checked as at first) by the next command that needs it. Round trips add up over
 * every connection it had.
 */
export class ReopeningConnection implements Connection {
  private current: Connection | undefined;

  private opening: Promise<Connection> | undefined;

  private earlierRoundTrips = 0;

  readonly hostName: string;

  readonly probeTimeoutMs: number;

  constructor(
    first: Connection,
    private readonly reopen: () => Promise<Connection>,
    private readonly close_: () => Promise<void>,
  ) {
    this.current = first;
    this.hostName = first.hostName;
    this.probeTimeoutMs = first.probeTimeoutMs;
  }

  get roundTrips(): number {
    return this.earlierRoundTrips + (this.current?.roundTrips ?? 0);
  }

  /** Whether a connection is open now (what the bound counts). */
  get open(): boolean {
    return this.current !== undefined;
  }

  private async connection(): Promise<Connection> {
    if (this.current) return this.current;
    this.opening ??= this.reopen().then((c) => {
      this.current = c;
      return c;
    }).finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /** Close the connection (settles once it has closed); the next command opens a new one. */
  async release(): Promise<void> {
    if (!this.current) return;
    this.earlierRoundTrips += this.current.roundTrips;
    this.current = undefined;
    await this.close_();
  }

  async exec(command: string, opts?: ExecOptions): Promise<ExecResult> {
    return (await this.connection()).exec(command, opts);
  }

  async spawn(command: string, opts?: Pick<ExecOptions, 'become'>): Promise<RemoteProcess> {
    const c = await this.connection();
    if (!c.spawn) throw new Error(`${this.hostName}: this connection cannot stream a command`);
    return c.spawn(command, opts);
  }

  async forward(address: string, port: number): Promise<Duplex> {
    return (await this.connection()).forward(address, port);
  }

  close(): void {
    this.current?.close();
    this.current = undefined;
  }
}

/** How an SshConnector's sessions use the state read kept on each host (facts/remembered.ts). */
export interface SshConnectorOptions {
  /** 'keep': use and write it (a real run); 'use': use it, write nothing (--check); 'off': neither. */
  stateRead?: 'keep' | 'use' | 'off';
  /** The file on each host (tests: a scratch path). */
  stateReadFile?: string;
}

/** SSH to every host (jump hosts shared), one connection per host for the whole run. */
export class SshConnector implements Connector {
  private readonly pool: ConnectionPool;

  private readonly remember: RememberOptions | undefined;

  constructor(inventory: Inventory, opts: SshConnectorOptions = {}) {
    this.pool = new ConnectionPool(inventory);
    const mode = opts.stateRead ?? 'off';
    this.remember = mode === 'off' ? undefined : { file: opts.stateReadFile ?? STATE_READ_FILE, store: mode === 'keep' };
  }

  async open(host: Host): Promise<HostSession> {
    const conn = new ReopeningConnection(await this.pool.connect(host), () => this.pool.connect(host), () => this.pool.release(host));
    return sessionOf(
      conn,
      () => this.pool.checkFreshLogin(host),
      (name) => this.pool.connectByName(name),
      this.remember,
      () => conn.release(),
    );
  }

  close(): Promise<void> {
    return this.pool.closeAll();
  }
}
