import { connectHosts, DEFAULT_FORKS, NO_EVENTS, SshConnector, type Connected } from '../executor/index.js';
import { factsToJSON } from '../facts/index.js';
import { prepareHosts, selectHosts } from '../inventory/index.js';
import { errorMessage } from '../util/errors.js';
import { EXIT } from './exit-codes.js';
import { loadInventory } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { printOut } from './output.js';

/**
 * Connect the selected hosts, read their facts and do `each` on each, at most forks hosts at once
 * (DEFAULT_FORKS unless --forks says): a host's connection is closed as soon as it is done, so the
 * controller never holds more than forks connections, as in a run (README "Speed"). A host that
 * cannot be reached is in `down`, not thrown.
 */
async function eachHost<T>(o: CommonOptions, each: (c: Connected) => Promise<T>): Promise<{ done: Map<string, T>; down: Map<string, string> }> {
  const inv = loadInventory(requireInventory(o));
  const names = selectHosts(inv, o.limit);
  prepareHosts(inv, names, { vars: false });
  const connector = new SshConnector(inv);
  const done = new Map<string, T>();
  try {
    const forks = o.forks ?? Math.min(Math.max(names.length, 1), DEFAULT_FORKS);
    const { down } = await connectHosts(connector, names.map((n) => inv.hosts.get(n)!), forks, NO_EVENTS, async (c) => {
      try {
        done.set(c.host.name, await each(c));
      } finally {
        await c.session.release?.();
      }
    });
    return { done, down };
  } finally {
    await connector.close();
  }
}

/** `provision facts`: the typed facts of every host, as JSON keyed by host. */
export async function factsCommand(o: CommonOptions): Promise<number> {
  const { done, down } = await eachHost(o, async (c) => factsToJSON(c.facts));
  const out: Record<string, unknown> = Object.fromEntries(done);
  for (const [h, reason] of down) out[h] = { unreachable: reason };
  printOut(JSON.stringify(out, null, 2));
  return down.size ? EXIT.UNREACHABLE : EXIT.OK;
}

/**
 * `provision ping`: SSH (with host key verification) and become, per host. Every host answers on a
 * line of its own, in parallel: a host whose become fails or whose check outlives probe_timeout is
 * its row, it does not end the command and hide the others' answers.
 */
export async function pingCommand(o: CommonOptions): Promise<number> {
  type Row = { host: string; ok: boolean; user?: string; error?: string; os?: string; unreachable?: string };
  const { done, down } = await eachHost(o, async ({ host: { name: host }, facts, session }): Promise<Row> => {
    const os = facts.os.pretty;
    try {
      const r = await session.exec('id -un', { become: true, timeoutMs: session.probeTimeoutMs });
      return r.code === 0 ? { host, ok: true, user: r.stdout.trim(), os } : { host, ok: false, error: r.stderr.trim() || `exit ${r.code}`, os };
    } catch (err) {
      return { host, ok: false, error: errorMessage(err), os };
    }
  });
  const rows = [...done.values()];
  for (const [host, reason] of down) rows.push({ host, ok: false, unreachable: reason });
  if (o.json) printOut(JSON.stringify(rows));
  else
    for (const r of rows)
      printOut(`${r.host}: ${r.unreachable !== undefined ? `UNREACHABLE: ${r.unreachable}` : r.ok ? `pong (become: ${r.user}, ${r.os})` : `become failed: ${r.error}`}`);
  return down.size ? EXIT.UNREACHABLE : rows.some((r) => !r.ok) ? EXIT.FAILED : EXIT.OK;
}
