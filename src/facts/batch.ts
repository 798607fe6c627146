import { randomBytes } from 'node:crypto';
import type { Connection } from '../transport/index.js';

/** A state-reading shell snippet. Many are run as one script: one round trip for all. */
export interface Probe {
  key: string;
  script: string;
  /**
   * Probes that read the same kind of state with one command each (one `systemctl show` per unit)
   * share one run of it instead: `read(items)` runs once per batch, before the probes, with every
   * item of its group, its output in the file "$PROBE_DIR/GROUP"; each probe's `script` takes its
   * own part from that file.
   */
  shared?: { group: string; item: string; read: (items: string[]) => string };
}

export interface ProbeResult {
  stdout: string;
  code: number;
}

/** The one shell script that runs every probe, each framed by markers carrying the nonce. */
export function batchScript(probes: Probe[], nonce: string): string {
  const groups = new Map<string, { read: (items: string[]) => string; items: string[] }>();
  for (const p of probes) {
    if (!p.shared) continue;
    const g = groups.get(p.shared.group) ?? { read: p.shared.read, items: [] };
    if (!g.items.includes(p.shared.item)) g.items.push(p.shared.item);
    groups.set(p.shared.group, g);
  }
  const prelude = groups.size
    ? [
        'PROBE_DIR=$(mktemp -d) || exit 1',
        `trap 'rm -rf "$PROBE_DIR"' EXIT`,
        ...[...groups].map(([name, g]) => `( ${g.read(g.items)}\n) > "$PROBE_DIR/${name}" 2>/dev/null`),
      ]
    : [];
  return [
    ...prelude,
    ...probes.map((p, i) => `printf '\\n@@${nonce} ${i}\\n'\n( ${p.script}\n) 2>&1\nprintf '\\n@@${nonce} ${i} end %s\\n' "$?"`),
  ].join('\n');
}

/**
 * Run many probes in one round trip. Each probe's output is framed by markers carrying a
 * random nonce, so no output can forge a frame; stderr of each probe is folded into its stdout.
 */
export async function runProbes(conn: Connection, probes: Probe[], become?: boolean): Promise<Map<string, ProbeResult>> {
  const results = new Map<string, ProbeResult>();
  const unique = [...new Map(probes.map((p) => [p.key, p])).values()];
  if (unique.length === 0) return results;
  const nonce = randomBytes(8).toString('hex');
  const script = batchScript(unique, nonce);
  const res = await conn.exec('sh -s', { stdin: script + '\n', become });
  const re = new RegExp(`\\n@@${nonce} (\\d+)\\n([\\s\\S]*?)\\n@@${nonce} \\1 end (\\d+)\\n`, 'g');
  for (const m of res.stdout.matchAll(re)) {
    const probe = unique[Number(m[1])]!;
    results.set(probe.key, { stdout: m[2]!, code: Number(m[3]) });
  }
  for (const p of unique) {
    if (!results.has(p.key)) results.set(p.key, { stdout: res.stderr, code: 255 });
  }
  return results;
}
