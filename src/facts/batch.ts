import { randomBytes } from 'node:crypto';
import type { Connection } from '../transport/index.js';

/** A state-reading shell snippet. Many are run as one script: one round trip for all. */
export interface Probe {
  key: string;
  script: string;
}

export interface ProbeResult {
  stdout: string;
  code: number;
}

/** The one shell script that runs every probe, each framed by markers carrying the nonce. */
export function batchScript(probes: Probe[], nonce: string): string {
  return probes
    .map((p, i) => `printf '\\n@@${nonce} ${i}\\n'\n( ${p.script}\n) 2>&1\nprintf '\\n@@${nonce} ${i} end %s\\n' "$?"`)
    .join('\n');
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
