import { connectHosts, NO_EVENTS, SshConnector } from '../executor/index.js';
import { factsToJSON } from '../facts/index.js';
import { prepareHosts, selectHosts } from '../inventory/index.js';
import { errorMessage } from '../util/errors.js';
import { EXIT } from './exit-codes.js';
import { loadInventory } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { printOut } from './output.js';

async function withHosts<T>(o: CommonOptions, fn: (r: Awaited<ReturnType<typeof connectHosts>>) => Promise<T>): Promise<T> {
  const inv = loadInventory(requireInventory(o));
  const names = selectHosts(inv, o.limit);
  prepareHosts(inv, names, { vars: false });
  const connector = new SshConnector(inv);
  try {
    const res = await connectHosts(connector, names.map((n) => inv.hosts.get(n)!), o.forks ?? names.length, NO_EVENTS);
    return await fn(res);
  } finally {
    await connector.close();
  }
}

/** `provision facts`: the typed facts of every host, as JSON keyed by host. */
export async function factsCommand(o: CommonOptions): Promise<number> {
  return withHosts(o, async ({ up, down }) => {
    const out: Record<string, unknown> = {};
    for (const [h, c] of up) out[h] = factsToJSON(c.facts);
    for (const [h, reason] of down) out[h] = { unreachable: reason };
    printOut(JSON.stringify(out, null, 2));
    return down.size ? EXIT.UNREACHABLE : EXIT.OK;
  });
}

/**
 * `provision ping`: SSH (with host key verification) and become, per host. Every host answers on a
 * line of its own, in parallel: a host whose become fails or whose check outlives probe_timeout is
 * its row, it does not end the command and hide the others' answers.
 */
export async function pingCommand(o: CommonOptions): Promise<number> {
  return withHosts(o, async ({ up, down }) => {
    const rows: { host: string; ok: boolean; user?: string; error?: string; os?: string; unreachable?: string }[] = await Promise.all(
      [...up].map(async ([host, c]) => {
        const os = c.facts.os.pretty;
        try {
          const r = await c.session.exec('id -un', { become: true, timeoutMs: c.session.probeTimeoutMs });
          return r.code === 0 ? { host, ok: true, user: r.stdout.trim(), os } : { host, ok: false, error: r.stderr.trim() || `exit ${r.code}`, os };
        } catch (err) {
          return { host, ok: false, error: errorMessage(err), os };
        }
      }),
    );
    for (const [host, reason] of down) rows.push({ host, ok: false, unreachable: reason });
    if (o.json) printOut(JSON.stringify(rows));
    else
      for (const r of rows)
        printOut(`${r.host}: ${r.unreachable !== undefined ? `UNREACHABLE: ${r.unreachable}` : r.ok ? `pong (become: ${r.user}, ${r.os})` : `become failed: ${r.error}`}`);
    return down.size ? EXIT.UNREACHABLE : rows.some((r) => !r.ok) ? EXIT.FAILED : EXIT.OK;
  });
}
