import type { Host, Inventory } from '../inventory/index.js';
import { SshConnection } from '../transport/index.js';
import { ConnectionError, ModuleError } from '../util/errors.js';

/**
 * Opens and keeps one SSH connection per host for the whole run. A jump host is connected
 * first (once, shared by every host behind it), and the target is reached through it.
 */
export class ConnectionPool {
  private pending = new Map<string, Promise<SshConnection>>();

  /** Hosts whose connection another host uses (a jump host, a peer): never released before the end. */
  private readonly pinned = new Set<string>();

  constructor(private readonly inventory: Inventory) {}

  private jumpHost(host: Host): Host | undefined {
    const jump = host.connection.jump;
    if (!jump) return undefined;
    const known = this.inventory.hosts.get(jump);
    if (known) return known;
    const m = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(jump)!;
    return {
      name: jump,
      address: m[2]!,
      groups: [],
      vars: {},
      connection: { ...host.connection, jump: undefined, user: m[1] ?? host.connection.user, port: m[3] ? Number(m[3]) : 22 },
    };
  }

  connect(host: Host, chain: string[] = []): Promise<SshConnection> {
    const existing = this.pending.get(host.name);
    if (existing) return existing;
    if (chain.includes(host.name)) {
      return Promise.reject(new ConnectionError(`${host.name}: jump hosts form a loop (${[...chain, host.name].join(' → ')})`, 'protocol'));
    }
    const p = (async () => {
      const jump = this.jumpHost(host);
      if (jump) this.pinned.add(jump.name);
      const via = jump ? await this.connect(jump, [...chain, host.name]) : undefined;
      return SshConnection.connect(host, via);
    })();
    this.pending.set(host.name, p);
    return p;
  }

  /** The pooled connection of an inventory host, by name (a peer a task reads from). */
  connectByName(name: string): Promise<SshConnection> {
    const host = this.inventory.hosts.get(name);
    if (!host) return Promise.reject(new ModuleError(`no host "${name}" in the inventory`));
    this.pinned.add(name);
    return this.connect(host);
  }

  /**
   * Close a host's connection until it is needed again (the next connect opens a new one), unless
   * another host uses it. What keeps a run of more hosts than forks within forks open connections.
   */
  async release(host: Host): Promise<void> {
    const p = this.pending.get(host.name);
    if (!p || this.pinned.has(host.name)) return;
    this.pending.delete(host.name);
    const c = await p.catch(() => undefined);
    if (!c) return;
    c.close();
    // A bounded wait: a host that never answers the close is dropped by its keepalives anyway.
    await Promise.race([c.ended(), new Promise((r) => setTimeout(r, 5000).unref())]);
  }

  /**
   * Open a NEW connection to a host (through its jump host's shared connection), run `true`, close it.
   * Proves the host still accepts fresh logins, e.g. after a firewall change (commit-confirm).
   */
  async checkFreshLogin(host: Host, timeoutMs = 8000): Promise<void> {
    const jump = this.jumpHost(host);
    if (jump) this.pinned.add(jump.name);
    const via = jump ? await this.connect(jump) : undefined;
    const conn = await SshConnection.connect({ ...host, connection: { ...host.connection, connectTimeoutMs: Math.min(timeoutMs, host.connection.connectTimeoutMs) } }, via);
    try {
      const r = await conn.exec('true', { become: false, timeoutMs });
      if (r.code !== 0) throw new ConnectionError(`${host.name}: a fresh login could not run a command`, 'protocol');
    } finally {
      conn.close();
    }
  }

  async closeAll(): Promise<void> {
    for (const p of this.pending.values()) {
      try {
        (await p).close();
      } catch {
        /* never connected */
      }
    }
    this.pending.clear();
  }
}
