import { gatherFacts, runProbes, type Facts, type ProbeResult, type RawProbe } from '../facts/index.js';
import type { Host, Inventory } from '../inventory/index.js';
import type { Connection, ExecOptions, ExecResult, RemoteProcess } from '../transport/index.js';
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
}

/** Opens sessions to hosts; closes every one it opened at the end of the run. */
export interface Connector {
  open(host: Host): Promise<HostSession>;
  close(): Promise<void>;
}

/** A session over a connection: probes through the batch script (facts/batch.ts). */
export function sessionOf(conn: Connection, freshLogin?: () => Promise<void>, peer?: (hostName: string) => Promise<Connection>): HostSession {
  return {
    facts: () => gatherFacts(conn),
    read: (probes) => runProbes(conn, probes, true),
    exec: (command, opts) => conn.exec(command, opts),
    spawn: conn.spawn ? (command, opts) => conn.spawn!(command, opts) : undefined,
    freshLogin,
    peer,
    get probeTimeoutMs() {
      return conn.probeTimeoutMs;
    },
    get roundTrips() {
      return conn.roundTrips;
    },
  };
}

/** SSH to every host (jump hosts shared), one connection per host for the whole run. */
export class SshConnector implements Connector {
  private readonly pool: ConnectionPool;

  constructor(inventory: Inventory) {
    this.pool = new ConnectionPool(inventory);
  }

  async open(host: Host): Promise<HostSession> {
    const conn = await this.pool.connect(host);
    return sessionOf(
      conn,
      () => this.pool.checkFreshLogin(host),
      (name) => this.pool.connectByName(name),
    );
  }

  close(): Promise<void> {
    return this.pool.closeAll();
  }
}
