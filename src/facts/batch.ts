import { randomBytes } from 'node:crypto';
import { CommandTimeoutError, type Connection } from '../transport/index.js';

export interface ProbeResult {
  stdout: string;
  code: number;
}

/**
 * Probes that read the same kind of state (one `systemctl show` per unit, one `stat` per file) share
 * ONE read of it instead: `read(items)` runs once per batch with every item of its group, and each
 * probe's result is `pick`ed out of that output on the controller, so the host runs no command per
 * item. A picked result must look exactly like the probe run alone (plans fingerprint it).
 */
export interface SharedRead {
  group: string;
  item: string;
  read: (items: string[]) => string;
  /** This item's result; `items` are all the group's items, as `read` got them. */
  pick: (out: ProbeResult, item: string, items: string[]) => ProbeResult;
}

/** A state-reading shell snippet. Many are run as one script: one round trip for all. */
export type Probe = { key: string; script: string; shared?: undefined } | { key: string; shared: SharedRead; script?: undefined };

interface Section {
  /** Frame id: "g<n>" for a shared read, "<n>" for a probe of its own. */
  id: string;
  script: string;
}

/** Shared groups of the probes (first probe's read function wins) and the script sections. */
function sections(probes: Probe[]): { groups: Map<string, { read: SharedRead['read']; items: string[]; id: string }>; all: Section[] } {
  const groups = new Map<string, { read: SharedRead['read']; items: string[]; id: string }>();
  for (const p of probes) {
    if (!p.shared) continue;
    const g = groups.get(p.shared.group) ?? { read: p.shared.read, items: [], id: `g${groups.size}` };
    if (!g.items.includes(p.shared.item)) g.items.push(p.shared.item);
    groups.set(p.shared.group, g);
  }
  const all: Section[] = [
    ...[...groups.values()].map((g) => ({ id: g.id, script: g.read(g.items) })),
    ...probes.flatMap((p, i) => (p.shared ? [] : [{ id: String(i), script: p.script }])),
  ];
  return { groups, all };
}

/** The one shell script that runs every probe and shared read, each framed by markers carrying the nonce. */
export function batchScript(probes: Probe[], nonce: string): string {
  return sections(probes)
    .all.map((s) => `printf '\\n@@${nonce} ${s.id}\\n'\n( ${s.script}\n) 2>&1\nprintf '\\n@@${nonce} ${s.id} end %s\\n' "$?"`)
    .join('\n');
}

/**
 * The results of a batch script's output, by probe key. Frames carry a random nonce, so no output
 * can forge one; a probe whose frame is missing (the script was cut off) gets `missing` with code 255.
 */
export function parseBatchOutput(probes: Probe[], nonce: string, stdout: string, missing = ''): Map<string, ProbeResult> {
  const results = completedResults(probes, nonce, stdout);
  for (const p of probes) if (!results.has(p.key)) results.set(p.key, { stdout: missing, code: 255 });
  return results;
}

/** The results of the probes whose frame is complete in `stdout` (all of them, unless the script was cut off). */
function completedResults(probes: Probe[], nonce: string, stdout: string): Map<string, ProbeResult> {
  const frames = new Map<string, ProbeResult>();
  const re = new RegExp(`\\n@@${nonce} (g?\\d+)\\n([\\s\\S]*?)\\n@@${nonce} \\1 end (\\d+)\\n`, 'g');
  for (const m of stdout.matchAll(re)) frames.set(m[1]!, { stdout: m[2]!, code: Number(m[3]) });
  const { groups } = sections(probes);
  const results = new Map<string, ProbeResult>();
  probes.forEach((p, i) => {
    const g = p.shared ? groups.get(p.shared.group)! : undefined;
    const out = frames.get(g ? g.id : String(i));
    if (out) results.set(p.key, p.shared ? p.shared.pick(out, p.shared.item, g!.items) : out);
  });
  return results;
}

/**
 * The code of a result read while the state changed under it (a file written between the two
 * parts of a shared read): the probe is read again, up to READ_ATTEMPTS times in all, and the last
 * answer stands (it is built to match nothing, so the task converges the state instead of trusting it).
 */
export const PROBE_RETRY = 75;
const READ_ATTEMPTS = 3;

/** The section a batch was running when it was cut off: its frame opened in `stdout` and never closed. */
function unfinishedSection(probes: Probe[], nonce: string, stdout: string): { keys: string[]; what: string } | undefined {
  const ended = new Set([...stdout.matchAll(new RegExp(`\\n@@${nonce} (g?\\d+) end \\d+\\n`, 'g'))].map((m) => m[1]!));
  const open = [...stdout.matchAll(new RegExp(`\\n@@${nonce} (g?\\d+)\\n`, 'g'))].map((m) => m[1]!).find((id) => !ended.has(id));
  if (open === undefined) return undefined;
  if (!open.startsWith('g')) return { keys: [probes[Number(open)]!.key], what: `probe "${probes[Number(open)]!.key}"` };
  const [group, g] = [...sections(probes).groups].find(([, v]) => v.id === open)!;
  const items = `${g.items.slice(0, 3).join(', ')}${g.items.length > 3 ? ` and ${g.items.length - 3} more` : ''}`;
  return { keys: probes.filter((p) => p.shared?.group === group).map((p) => p.key), what: `the shared ${group} read of ${items}` };
}

/**
 * A batch of probes ran out of its bound. `hung` are the probes it was running (all that had not
 * finished when it cannot be told), `done` the results of those that finished before: they stand.
 */
export class ProbeTimeoutError extends CommandTimeoutError {
  constructor(
    base: CommandTimeoutError,
    what: string,
    readonly hung: string[],
    readonly done: Map<string, ProbeResult>,
  ) {
    super(what, base.boundMs, 'probe_timeout', base.stuck, base.stdout, base.stderr);
  }
}

/**
 * Run many probes in one round trip; stderr of each probe is folded into its stdout. The batch is
 * bounded by the host's probe_timeout: a probe that hangs (a dead NFS mount, a hung database) makes
 * it fail with a ProbeTimeoutError naming that probe, and the host stops it.
 */
export async function runProbes(conn: Connection, probes: Probe[], become?: boolean): Promise<Map<string, ProbeResult>> {
  const results = new Map<string, ProbeResult>();
  let todo = [...new Map(probes.map((p) => [p.key, p])).values()];
  for (let attempt = 1; todo.length > 0; attempt++) {
    const nonce = randomBytes(8).toString('hex');
    const batch = todo;
    const res = await conn.exec('sh -s', { stdin: batchScript(batch, nonce) + '\n', become, timeoutMs: conn.probeTimeoutMs }).catch((err: unknown) => {
      if (!(err instanceof CommandTimeoutError)) throw err;
      const done = completedResults(batch, nonce, err.stdout);
      for (const [k, v] of results) if (!done.has(k)) done.set(k, v);
      const open = unfinishedSection(batch, nonce, err.stdout);
      const hung = open?.keys ?? batch.map((p) => p.key).filter((k) => !done.has(k));
      throw new ProbeTimeoutError(err, `reading the host's state: ${open?.what ?? `${hung.length} probes`}`, hung, done);
    });
    for (const [k, v] of parseBatchOutput(todo, nonce, res.stdout, res.stderr)) results.set(k, v);
    todo = attempt < READ_ATTEMPTS ? todo.filter((p) => results.get(p.key)?.code === PROBE_RETRY) : [];
  }
  return results;
}
