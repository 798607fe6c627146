/**
 * One database server as the `provision db` commands see it: SQL through the host's own client (root
 * over the unix socket, SQL on stdin: no password in argv, no port opened for the control machine),
 * and its replication state read in one client run.
 */
import type { HostSession } from '../executor/session.js';
import type { RemoteProcess } from '../transport/index.js';
import { CLIENT, CLIENT_WITH_HEADERS, parseRecords, sqlString, type MysqlFlavor } from '../modules/mysql/client.js';
import { parseReplicaStatus, type ReplicaStatus } from '../modules/mysql/replication.js';
import { ModuleError } from '../util/errors.js';

/** Every statement of these commands is bounded on the host (a server that hangs fails the step, it does not stall it). */
const STATEMENT_BOUND_MS = 120_000;

export class DbServer {
  constructor(
    readonly name: string,
    /** Its private address: where its peers and the applications reach it. */
    readonly address: string,
    readonly flavor: MysqlFlavor,
    private readonly session: HostSession,
  ) {}

  /** Run SQL; the rows as batch text (no header unless asked). Throws with the client's message. */
  async query(sql: string, opts: { headers?: boolean; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.session.exec(`${opts.headers ? CLIENT_WITH_HEADERS : CLIENT} 2>&1`, {
      stdin: sql.trim().replace(/;?$/, ';') + '\n',
      become: true,
      timeoutMs: opts.timeoutMs ?? STATEMENT_BOUND_MS,
    });
    if (r.code !== 0) throw new ModuleError(`${this.name}: SQL failed (exit ${r.code}): ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' ')}`);
    return r.stdout;
  }

  /** One value (first column of the first row). */
  async value(sql: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    return (await this.query(sql, opts)).split('\n')[0]!.split('\t')[0] ?? '';
  }

  /** A shell command as root on the host (the primary record); throws on failure. */
  async shell(cmd: string, stdin?: string): Promise<string> {
    const r = await this.session.exec(cmd, { stdin, become: true, timeoutMs: STATEMENT_BOUND_MS });
    if (r.code !== 0) throw new ModuleError(`${this.name}: ${cmd.slice(0, 60)} failed (exit ${r.code}): ${(r.stdout + r.stderr).trim().slice(-300)}`);
    return r.stdout;
  }

  /** A shell command as root whose result is returned whatever its exit (the caller reads the code). */
  async tryShell(cmd: string, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await this.session.exec(cmd, { stdin, become: true, timeoutMs: STATEMENT_BOUND_MS });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  /** A command whose stdin/stdout are streamed (a copy piped from one host into another). */
  async spawn(cmd: string): Promise<RemoteProcess> {
    if (!this.session.spawn) throw new ModuleError(`${this.name}: this connection cannot stream a command`);
    return this.session.spawn(cmd, { become: true });
  }

  /** Stop / start replication, in this flavour's words. */
  get stopReplica(): string {
    return this.flavor === 'mariadb' ? 'STOP SLAVE' : 'STOP REPLICA';
  }
  get startReplica(): string {
    return this.flavor === 'mariadb' ? 'START SLAVE' : 'START REPLICA';
  }

  /** The GTIDs this server has executed (MariaDB: its binary log's position; with log_slave_updates that includes what it replicated). */
  async executedGtids(): Promise<string> {
    return this.value(this.flavor === 'mariadb' ? 'SELECT @@GLOBAL.gtid_binlog_pos' : 'SELECT @@GLOBAL.gtid_executed');
  }

  /**
   * Wait (bounded) until this server has applied `gtids`: MASTER_GTID_WAIT (MariaDB) /
   * WAIT_FOR_EXECUTED_GTID_SET (MySQL). True when reached, false at the bound.
   */
  async waitForGtids(gtids: string, timeoutSeconds: number): Promise<boolean> {
    if (gtids === '') return true;
    const sql =
      this.flavor === 'mariadb' ? `SELECT MASTER_GTID_WAIT(${sqlString(gtids)}, ${timeoutSeconds})` : `SELECT WAIT_FOR_EXECUTED_GTID_SET(${sqlString(gtids)}, ${timeoutSeconds})`;
    const r = await this.value(sql, { timeoutMs: (timeoutSeconds + 30) * 1000 });
    // MariaDB: 0 reached, -1 timeout; MySQL: 0 reached, 1 timeout.
    return r === '0';
  }

  async readState(): Promise<ServerState> {
    const vars =
      this.flavor === 'mariadb'
        ? 'SELECT @@GLOBAL.read_only AS read_only, 0 AS super_read_only, @@GLOBAL.server_id AS server_id, @@GLOBAL.gtid_binlog_pos AS executed, @@GLOBAL.gtid_slave_pos AS replica_applied'
        : 'SELECT @@GLOBAL.read_only AS read_only, @@GLOBAL.super_read_only AS super_read_only, @@GLOBAL.server_id AS server_id, @@GLOBAL.gtid_executed AS executed, @@GLOBAL.gtid_executed AS replica_applied';
    const out = await this.query(`${vars};\n${this.flavor === 'mariadb' ? 'SHOW SLAVE STATUS' : 'SHOW REPLICA STATUS'}`, { headers: true });
    return parseServerState(this, out);
  }
}

/** What `db status` reports of one server. */
export interface ServerState {
  name: string;
  address: string;
  flavor: MysqlFlavor;
  readOnly: boolean;
  superReadOnly: boolean;
  serverId: number;
  /** GTIDs executed (MariaDB gtid_binlog_pos, MySQL gtid_executed). */
  executed: string;
  /** Replication, when configured (a source host set). */
  replica?: ReplicaStatus & { received: string; applied: string };
}

/**
 * The client prints one header line and its rows per result set; SHOW SLAVE STATUS prints nothing
 * when replication was never configured (or was RESET ALL). Two lines of vars, then the status.
 */
export function parseServerState(server: Pick<DbServer, 'name' | 'address' | 'flavor'>, out: string): ServerState {
  const lines = out.split('\n').filter((l) => l.length > 0);
  const vars = parseRecords(lines.slice(0, 2).join('\n'))[0];
  if (!vars) throw new ModuleError(`${server.name}: cannot read the server variables: ${out.trim().slice(0, 200)}`);
  const status = parseReplicaStatus(lines.slice(2).join('\n'), server.flavor);
  const on = (v: string | null | undefined) => v === '1' || v === 'ON';
  return {
    name: server.name,
    address: server.address,
    flavor: server.flavor,
    readOnly: on(vars.read_only),
    superReadOnly: on(vars.super_read_only),
    serverId: Number(vars.server_id ?? 0),
    executed: vars.executed ?? '',
    replica: status.configured ? { ...status, received: status.gtidPos, applied: vars.replica_applied ?? '' } : undefined,
  };
}

/**
 * The step log of a db command: each line stamped with the time since the command began, kept for
 * its result and passed on to the caller's log as it happens.
 */
export function stepLog(out: (line: string) => void): { steps: string[]; log: (msg: string) => void } {
  const t0 = Date.now();
  const steps: string[] = [];
  const log = (msg: string) => {
    const line = `[+${String(Date.now() - t0).padStart(5)} ms] ${msg}`;
    steps.push(line);
    out(line);
  };
  return { steps, log };
}
