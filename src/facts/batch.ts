import { randomBytes } from 'node:crypto';
import { CommandTimeoutError, type Connection } from '../transport/index.js';
import { keepable, storeSection, templateHash, type RememberedRead } from './remembered.js';

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

/**
 * What the batch runs for one state read: a shell snippet of its own, or its item in a shared read.
 * Many are run as one script: one round trip for all. (Modules add a typed parse: modules/contract.ts.)
 */
export type RawProbe = { key: string; script: string; shared?: undefined } | { key: string; shared: SharedRead; script?: undefined };

interface Section {
  /** Frame id: "g<n>" for a shared read, "<n>" for a probe of its own. */
  id: string;
  script: string;
}

/** Shared groups of the probes (first probe's read function wins) and the script sections. */
function sections(probes: readonly RawProbe[]): { groups: Map<string, { read: SharedRead['read']; items: string[]; id: string }>; all: Section[] } {
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

/**
 * The batch script with its nonce left to the shell variable N: the same text for every run, so a
 * host can keep it and run it again with a new nonce (remembered.ts). Probes run in subshells: none
 * can change N.
 */
export function batchTemplate(probes: readonly RawProbe[]): string {
  return sections(probes)
    .all.map((s) => `printf '\\n@@%s ${s.id}\\n' "$N"\n( ${s.script}\n) 2>&1\nprintf '\\n@@%s ${s.id} end %s\\n' "$N" "$?"`)
    .join('\n');
}

/** The one shell script that runs every probe and shared read, each framed by markers carrying the nonce. */
export function batchScript(probes: readonly RawProbe[], nonce: string): string {
  return `N=${nonce}\n${batchTemplate(probes)}`;
}

/**
 * The results of a batch script's output, by probe key. Frames carry a random nonce, so no output
 * can forge one; a probe whose frame is missing (the script was cut off) gets `missing` with code 255.
 */
export function parseBatchOutput(probes: readonly RawProbe[], nonce: string, stdout: string, missing = ''): Map<string, ProbeResult> {
  const results = completedResults(probes, nonce, stdout);
  for (const p of probes) if (!results.has(p.key)) results.set(p.key, { stdout: missing, code: 255 });
  return results;
}

/** The results of the probes whose frame is complete in `stdout` (all of them, unless the script was cut off). */
function completedResults(probes: readonly RawProbe[], nonce: string, stdout: string): Map<string, ProbeResult> {
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
function unfinishedSection(probes: readonly RawProbe[], nonce: string, stdout: string): { keys: string[]; what: string } | undefined {
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

/** A batch cut off at its bound: what finished stands (with `earlier` results), the probe it was in is named. */
export function cutOff(err: CommandTimeoutError, batch: readonly RawProbe[], nonce: string, earlier: ReadonlyMap<string, ProbeResult>): ProbeTimeoutError {
  const done = completedResults(batch, nonce, err.stdout);
  for (const [k, v] of earlier) if (!done.has(k)) done.set(k, v);
  const open = unfinishedSection(batch, nonce, err.stdout);
  const hung = open?.keys ?? batch.map((p) => p.key).filter((k) => !done.has(k));
  return new ProbeTimeoutError(err, `reading the host's state: ${open?.what ?? `${hung.length} probes`}`, hung, done);
}

/** The host's kept state read (remembered.ts): its answer from the facts' round trip, and where to keep this read. */
export interface ReadMemory {
  remembered?: RememberedRead;
  /** Keep this read's script on the host (in its own round trip) unless the kept one answered. */
  keepIn?: string;
}

/**
 * Run many probes in one round trip; stderr of each probe is folded into its stdout. The batch is
 * bounded by the host's probe_timeout: a probe that hangs (a dead NFS mount, a hung database) makes
 * it fail with a ProbeTimeoutError naming that probe, and the host stops it. With `memory`, the
 * first attempt is answered by the host's kept read when that is exactly this batch's script (no
 * round trip), else it is run and its script kept.
 */
export async function runProbes(conn: Connection, probes: readonly RawProbe[], become?: boolean, memory?: ReadMemory): Promise<Map<string, ProbeResult>> {
  const results = new Map<string, ProbeResult>();
  let todo = [...new Map(probes.map((p) => [p.key, p])).values()];
  for (let attempt = 1; todo.length > 0; attempt++) {
    const batch = todo;
    const template = batchTemplate(batch);
    // A kept read cut off by the bound it shared with the facts is read again under a bound of its own
    // (a slow host is not failed for it; a probe that really hangs fails this read, naming it).
    const kept = attempt === 1 && !memory?.remembered?.timeout ? memory?.remembered : undefined;
    let out: { stdout: string; stderr: string; nonce: string };
    if (kept && kept.hash === templateHash(template)) {
      out = kept;
    } else {
      const nonce = randomBytes(8).toString('hex');
      const keep = attempt === 1 && memory?.keepIn && keepable(template) ? `${storeSection(memory.keepIn, template, nonce)}\n` : '';
      const res = await conn.exec('sh -s', { stdin: `N=${nonce}\n${template}\n${keep}`, become, timeoutMs: conn.probeTimeoutMs }).catch((err: unknown) => {
        throw err instanceof CommandTimeoutError ? cutOff(err, batch, nonce, results) : err;
      });
      out = { ...res, nonce };
    }
    for (const [k, v] of parseBatchOutput(todo, out.nonce, out.stdout, out.stderr)) results.set(k, v);
    todo = attempt < READ_ATTEMPTS ? todo.filter((p) => results.get(p.key)?.code === PROBE_RETRY) : [];
  }
  return results;
}
