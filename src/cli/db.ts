/*
 * `provision db status | switchover`: the data tier's writer, read from the servers and moved
 * (src/db/*; the runbook is docs/database.md).
 */
import { switchover, SwitchoverRefused, type ReplicationLogin } from '../db/switchover.js';
import { failover, FailoverRefused, type HostView } from '../db/failover.js';
import { rejoin, RejoinRefused } from '../db/rejoin.js';
import { DbServer } from '../db/server.js';
import { renderStatus, summarize } from '../db/status.js';
import { connectHosts, NO_EVENTS, SshConnector } from '../executor/index.js';
import { prepareHosts, type Host, type Inventory } from '../inventory/index.js';
import { flavorOf } from '../modules/mysql/client.js';
import { roleVars } from '../roles/index.js';
import { GROUPS, privateAddress } from '../roles/shared.js';
import { errorMessage, InputError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import { EXIT } from './exit-codes.js';
import { loadInventory } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { printErr, printOut } from './output.js';
import '../roles/builtin.js';

/** The database hosts: db_primary and db_replica, in inventory order. */
export function databaseHosts(inv: Inventory): Host[] {
  const names = new Set([...(inv.groups.get(GROUPS.dbPrimary) ?? []), ...(inv.groups.get(GROUPS.dbReplica) ?? [])]);
  if (names.size === 0) throw new InputError(`no database hosts: the inventory has no host in ${GROUPS.dbPrimary} or ${GROUPS.dbReplica}`);
  return [...inv.hosts.values()].filter((h) => names.has(h.name));
}

/** Connect to every database host; unreachable ones are reported, the others given to fn. */
async function withServers<T>(
  o: CommonOptions,
  fn: (servers: DbServer[], unreachable: Record<string, string>, inv: Inventory) => Promise<T>,
  checkInput: (hosts: Host[]) => void = () => undefined,
): Promise<T> {
  const inv = loadInventory(requireInventory(o));
  const hosts = databaseHosts(inv);
  checkInput(hosts);
  prepareHosts(inv, hosts.map((h) => h.name));
  const connector = new SshConnector(inv);
  try {
    const { up, down } = await connectHosts(connector, hosts, hosts.length, NO_EVENTS);
    const servers = hosts.filter((h) => up.has(h.name)).map((h) => new DbServer(h.name, privateAddress(h), flavorOf(up.get(h.name)!.facts), up.get(h.name)!.session));
    return await fn(servers, Object.fromEntries(down), inv);
  } finally {
    await connector.close();
  }
}

/** `provision db status`: exit 0 healthy, 1 a problem (two writers, none, replication stopped), 3 a host unreachable (unless two writers answered). */
export async function dbStatusCommand(o: CommonOptions): Promise<number> {
  return withServers(o, async (servers, unreachable) => {
    const s = summarize(await Promise.all(servers.map((x) => x.readState())), unreachable);
    // --json: one JSON document on one line, as every --json output of the CLI.
    printOut(o.json ? JSON.stringify(s) : renderStatus(s));
    // Two writers is known whatever else could not be read; anything else with a host unreachable is unknown (3).
    if (s.twoWriters) return EXIT.FAILED;
    if (Object.keys(unreachable).length > 0) return EXIT.UNREACHABLE;
    return s.problems.length === 0 ? EXIT.OK : EXIT.FAILED;
  });
}

/** The mysql role's replication vars of a host (its inventory's, parsed by the role's schema: secrets resolved). */
function loginOf(inv: Inventory) {
  return (server: DbServer, source: DbServer): ReplicationLogin => {
    const v = roleVars('mysql', inv.hosts.get(server.name)!, { vars: {} });
    const s = roleVars('mysql', inv.hosts.get(source.name)!, { vars: {} });
    return { user: String(v.mysql_replication_user), password: v.mysql_replication_password as Secret, port: Number(s.mysql_port) };
  };
}

/** A host's database port (the mysql role's mysql_port). */
function portOf(inv: Inventory) {
  return (host: string): number => Number(roleVars('mysql', inv.hosts.get(host)!, { vars: {} }).mysql_port);
}

export interface SwitchoverCliOptions extends CommonOptions {
  to: string;
  writesTimeout: number;
  catchUpTimeout: number;
}

/** `provision db switchover --to HOST`: exit 2 switched over, 0 already the primary, 1 failed (rolled back or not: said so), 3 a host unreachable, 4 bad input. */
export async function dbSwitchoverCommand(o: SwitchoverCliOptions): Promise<number> {
  const checkTarget = (hosts: Host[]) => {
    if (!hosts.some((h) => h.name === o.to)) throw new InputError(`--to ${o.to}: not a database host of the inventory (${GROUPS.dbPrimary}, ${GROUPS.dbReplica}: ${hosts.map((h) => h.name).join(', ')})`);
  };
  return withServers(o, async (servers, unreachable, inv) => {
    if (Object.keys(unreachable).length > 0) {
      printErr(`provision: db switchover refused, nothing changed: ${Object.entries(unreachable).map(([h, why]) => `${h} unreachable (${why})`).join('; ')}`);
      return EXIT.UNREACHABLE;
    }
    try {
      const r = await switchover(servers, {
        to: o.to,
        writesTimeoutSeconds: o.writesTimeout,
        catchUpTimeoutSeconds: o.catchUpTimeout,
        login: loginOf(inv),
        log: (line) => (o.json ? undefined : printOut(line)),
      });
      if (o.json) printOut(JSON.stringify(r));
      else if (!r.ok) printOut(r.rolledBack ? `switchover FAILED and rolled back: ${r.from} is the primary, writable` : `switchover FAILED after the promotion: ${r.to} is the primary; see the steps above`);
      else if (r.promoted) printOut(`switched over: ${r.to} is the primary, ${r.from} replicates from it. Update the inventory: ${r.to} in db_primary, ${r.from} in db_replica (until then the mysql role refuses to converge the database hosts)`);
      return !r.ok ? EXIT.FAILED : r.promoted ? EXIT.CHANGED : EXIT.OK;
    } catch (err) {
      if (err instanceof SwitchoverRefused) {
        printErr(`provision: db switchover refused: ${err.message}`);
        return EXIT.FAILED;
      }
      throw err;
    }
  }, checkTarget);
}

export interface FailoverCliOptions extends CommonOptions {
  force?: boolean;
  to?: string;
  catchUpTimeout: number;
}

/** `provision db failover`: exit 2 failed over, 1 refused or failed (said why), 4 bad input. */
export async function dbFailoverCommand(o: FailoverCliOptions): Promise<number> {
  const checkTarget = (hosts: Host[]) => {
    if (o.to !== undefined && !hosts.some((h) => h.name === o.to)) throw new InputError(`--to ${o.to}: not a database host of the inventory (${GROUPS.dbPrimary}, ${GROUPS.dbReplica}: ${hosts.map((h) => h.name).join(', ')})`);
  };
  return withServers(o, async (servers, unreachable, inv) => {
    // Each host as it answers: SSH (a session), SQL (its state), or why not.
    const views: HostView[] = await Promise.all(
      databaseHosts(inv).map(async (h): Promise<HostView> => {
        const server = servers.find((s) => s.name === h.name);
        if (!server) return { name: h.name, address: privateAddress(h), sshError: unreachable[h.name] ?? 'not connected' };
        try {
          return { name: h.name, address: server.address, server, state: await server.readState() };
        } catch (err) {
          return { name: h.name, address: server.address, server, sqlError: errorMessage(err).slice(0, 200) };
        }
      }),
    );
    try {
      const r = await failover(views, {
        force: o.force === true,
        to: o.to,
        catchUpTimeoutSeconds: o.catchUpTimeout,
        login: loginOf(inv),
        port: portOf(inv),
        log: (line) => (o.json ? undefined : printOut(line)),
      });
      if (o.json) printOut(JSON.stringify(r));
      else if (!r.ok) printOut(r.promoted ? `failover FAILED after the promotion: ${r.to} is the primary; see the steps above` : 'failover FAILED before the promotion: see the steps above');
      else
        printOut(
          `failed over: ${r.to} is the primary (${r.from}: ${r.fence}). Possibly lost: ${r.possiblyLost?.text ?? 'none'}. ` +
            `Update the inventory: ${r.to} in db_primary, ${r.from} in db_replica; bring ${r.from} back with provision db rejoin ${r.from}`,
        );
      return r.ok ? EXIT.CHANGED : EXIT.FAILED;
    } catch (err) {
      if (err instanceof FailoverRefused) {
        printErr(`provision: db failover refused: ${err.message}`);
        return EXIT.FAILED;
      }
      throw err;
    }
  }, checkTarget);
}

export interface RejoinCliOptions extends CommonOptions {
  catchUpTimeout: number;
}

/** `provision db rejoin HOST`: exit 2 rejoined, 1 refused or failed, 3 HOST unreachable, 4 bad input. */
export async function dbRejoinCommand(host: string, o: RejoinCliOptions): Promise<number> {
  const checkHost = (hosts: Host[]) => {
    if (!hosts.some((h) => h.name === host)) throw new InputError(`${host}: not a database host of the inventory (${GROUPS.dbPrimary}, ${GROUPS.dbReplica}: ${hosts.map((h) => h.name).join(', ')})`);
  };
  return withServers(o, async (servers, unreachable, inv) => {
    if (unreachable[host] !== undefined) {
      printErr(`provision: db rejoin refused, nothing changed: ${host} unreachable (${unreachable[host]})`);
      return EXIT.UNREACHABLE;
    }
    try {
      const r = await rejoin(servers, { host, catchUpTimeoutSeconds: o.catchUpTimeout, login: loginOf(inv), port: portOf(inv), log: (line) => (o.json ? undefined : printOut(line)) });
      if (o.json) printOut(JSON.stringify(r));
      else printOut(r.ok ? `rejoined: ${host} replicates from ${r.primary}; its old data is in ${r.setAside}` : `rejoin FAILED: ${r.error}`);
      return r.ok ? EXIT.CHANGED : EXIT.FAILED;
    } catch (err) {
      if (err instanceof RejoinRefused) {
        printErr(`provision: db rejoin refused: ${err.message}`);
        return EXIT.FAILED;
      }
      throw err;
    }
  }, checkHost);
}
