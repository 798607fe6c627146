import { connectHosts, ConnectionPool, EXIT } from '../executor/index.js';
import { factsToJSON } from '../facts/index.js';
import { loadInventory, prepareHosts, selectHosts } from '../inventory/index.js';
import { MemoryReporter } from '../report/renderers.js';
import { maskDeep } from '../util/secrets.js';
import { requireInventory, type CommonOptions } from './main.js';

async function withHosts<T>(o: CommonOptions, fn: (r: Awaited<ReturnType<typeof connectHosts>>) => Promise<T>): Promise<T> {
  const inv = loadInventory(requireInventory(o));
  const names = selectHosts(inv, o.limit);
  prepareHosts(inv, names, { vars: false });
  const pool = new ConnectionPool(inv);
  try {
    const res = await connectHosts(pool, names.map((n) => inv.hosts.get(n)!), o.forks ?? names.length, new MemoryReporter());
    return await fn(res);
  } finally {
    await pool.closeAll();
  }
}

/** `provision facts`: the typed facts of every host, as JSON keyed by host. */
export async function factsCommand(o: CommonOptions): Promise<number> {
  return withHosts(o, async ({ up, down }) => {
    const out: Record<string, unknown> = {};
    for (const [h, c] of up) out[h] = factsToJSON(c.facts);
    for (const [h, reason] of down) out[h] = { unreachable: reason };
    process.stdout.write(JSON.stringify(maskDeep(out), null, 2) + '\n');
    return down.size ? EXIT.UNREACHABLE : EXIT.OK;
  });
}

/** `provision ping`: SSH (with host key verification) and become, per host. */
export async function pingCommand(o: CommonOptions): Promise<number> {
  return withHosts(o, async ({ up, down }) => {
    let failed = false;
    const rows: Record<string, unknown>[] = [];
    for (const [h, c] of up) {
      const r = await c.conn.exec('id -un', { become: true });
      const ok = r.code === 0;
      failed ||= !ok;
      rows.push({ host: h, ok, user: r.stdout.trim() || undefined, error: ok ? undefined : r.stderr.trim(), os: c.facts.os.pretty });
      if (!o.json) process.stdout.write(`${h}: ${ok ? `pong (become: ${r.stdout.trim()}, ${c.facts.os.pretty})` : `become failed: ${r.stderr.trim()}`}\n`);
    }
    for (const [h, reason] of down) {
      rows.push({ host: h, ok: false, unreachable: reason });
      if (!o.json) process.stdout.write(`${h}: UNREACHABLE: ${reason}\n`);
    }
    if (o.json) process.stdout.write(JSON.stringify(rows) + '\n');
    return down.size ? EXIT.UNREACHABLE : failed ? EXIT.FAILED : EXIT.OK;
  });
}
