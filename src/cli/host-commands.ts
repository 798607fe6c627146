import { connectHosts, NO_EVENTS, SshConnector } from '../executor/index.js';
import { factsToJSON } from '../facts/index.js';
import { prepareHosts, selectHosts } from '../inventory/index.js';
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

/** `provision ping`: SSH (with host key verification) and become, per host. */
export async function pingCommand(o: CommonOptions): Promise<number> {
  return withHosts(o, async ({ up, down }) => {
    let failed = false;
    const rows: Record<string, unknown>[] = [];
    for (const [h, c] of up) {
      const r = await c.session.exec('id -un', { become: true });
      const ok = r.code === 0;
      failed ||= !ok;
      rows.push({ host: h, ok, user: r.stdout.trim() || undefined, error: ok ? undefined : r.stderr.trim(), os: c.facts.os.pretty });
      if (!o.json) printOut(`${h}: ${ok ? `pong (become: ${r.stdout.trim()}, ${c.facts.os.pretty})` : `become failed: ${r.stderr.trim()}`}`);
    }
    for (const [h, reason] of down) {
      rows.push({ host: h, ok: false, unreachable: reason });
      if (!o.json) printOut(`${h}: UNREACHABLE: ${reason}`);
    }
    if (o.json) printOut(JSON.stringify(rows));
    return down.size ? EXIT.UNREACHABLE : failed ? EXIT.FAILED : EXIT.OK;
  });
}
