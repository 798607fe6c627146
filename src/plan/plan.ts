import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { HostOutcome, RunResult } from '../executor/index.js';
import type { Change } from '../modules/index.js';
import { InputError } from '../util/errors.js';
import { maskDeep } from '../util/secrets.js';
import { TOOL_VERSION } from '../util/version.js';
import { compareText } from '../util/compare-text.js';

export { factsFingerprint } from '../facts/index.js';

/** 2: fingerprints are keyed (HMAC with the control machine's plan key); version 1 had plain SHA-256. */
export const PLAN_VERSION = 2;

export interface PlannedTask {
  task: string;
  role?: string;
  module: string;
  handler: boolean;
  changes: Change[];
  /** A dry run could not know what this task does ("depends on NAME"): `apply` refuses to do it. */
  unknown?: string;
}

export interface HostPlan {
  unreachable?: string;
  failed?: string;
  tasks: PlannedTask[];
  /** Fingerprints of every state the plan was computed from: facts and each probe. */
  fingerprints: Record<string, string>;
}

export interface PlanFile {
  version: number;
  tool: string;
  created: string;
  /** Which plan key made the fingerprints (an HMAC of a fixed text; says nothing of the key). */
  planKey: string;
  inventory: string;
  playbook: string;
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  hosts: Record<string, HostPlan>;
}

/**
 * The plan key: a random key kept on the control machine (0600), made on first use. Fingerprints
 * of the state a plan relies on include the contents of files on the hosts, secret files among
 * them; plain SHA-256 of them in a plan file would let anyone holding the file test guesses of a
 * weak password offline. Keyed with this, they mean nothing without the key. `apply` on another
 * machine needs the same key file.
 */
export function planKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PROVISION_PLAN_KEY_FILE) return path.resolve(env.PROVISION_PLAN_KEY_FILE);
  return path.join(env.XDG_CONFIG_HOME || path.join(homedir(), '.config'), 'provision', 'plan.key');
}

const keys = new Map<string, Buffer>();

export function planKey(file = planKeyFile()): Buffer {
  const known = keys.get(file);
  if (known) return known;
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    // "wx": two runs starting at once cannot both make a key; the second reads the first's.
    writeFileSync(file, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new InputError(`plan key ${file}: cannot create it (${(err as NodeJS.ErrnoException).code})`);
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) throw new InputError(`plan key ${file} is readable by others (mode ${mode.toString(8).padStart(4, '0')}, expected 0600)`, `run: chmod 600 ${file}`);
  const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  if (key.length < 16) throw new InputError(`plan key ${file}: not a key (expected 64 hex digits)`, 'delete it: a new one is made on the next plan');
  keys.set(file, key);
  return key;
}

/** For tests: forget the keys read so far (another PROVISION_PLAN_KEY_FILE, a key rewritten). */
export function forgetPlanKeys(): void {
  keys.clear();
}

/** A fingerprint as it goes into a plan: keyed, truncated. The apply guard compares with the same. */
export function keyed(text: string, key = planKey()): string {
  return createHmac('sha256', key).update(text).digest('hex').slice(0, 16);
}

/** Names the key without revealing anything of it: plans made with another key are refused by name. */
function planKeyId(key = planKey()): string {
  return keyed('provision plan key', key);
}

/** A plan made with another plan key cannot be checked here: refuse it before any host is contacted. */
export function assertPlanKey(plan: PlanFile, file: string): void {
  const keyFile = planKeyFile();
  if (plan.planKey !== planKeyId(planKey(keyFile))) {
    throw new InputError(
      `plan ${file} was made with another plan key than ${keyFile}: its state fingerprints cannot be checked here`,
      'apply it on the machine that made it, copy that plan key here (mode 0600), or make a new plan',
    );
  }
}

/**
 * The plan's form of anything a run computed: every registered secret masked, in any encoding. A
 * plan is written, printed and compared in this form only (the apply guard puts what the real run
 * computes in it before comparing).
 */
export function planned<T>(value: T): T {
  return maskDeep(value);
}

/** One host's part of a plan: the changes its check run predicted, and what they were computed from. */
export function hostPlanOf(o: HostOutcome): HostPlan {
  if (o.factsFingerprint === undefined) return planned({ unreachable: o.unreachable, tasks: [], fingerprints: {} });
  const failed = o.outcomes.find((t) => t.status === 'failed');
  return planned({
    unreachable: o.unreachable,
    failed: failed ? `${failed.task}: ${failed.msg ?? ''}` : undefined,
    tasks: o.outcomes
      .filter((t) => t.status === 'changed' || t.status === 'unknown')
      .map((t): PlannedTask => ({ task: t.task, role: t.role, module: t.module, handler: t.handler, changes: t.changes, ...(t.status === 'unknown' ? { unknown: t.msg ?? 'unknown' } : {}) })),
    // Keyed: the probes' own hashes cover file contents (secret files too); see planKey.
    fingerprints: {
      facts: keyed(o.factsFingerprint),
      ...Object.fromEntries(Object.entries(o.observed).sort(([a], [b]) => compareText(a, b)).map(([k, v]) => [k, keyed(v)])),
    },
  });
}

/** Per host: the changes a check run predicted, and what they were computed from. */
export function planFromRun(res: Pick<RunResult, 'hosts'>, meta: Omit<PlanFile, 'version' | 'tool' | 'created' | 'planKey' | 'hosts'>): PlanFile {
  const hosts = Object.fromEntries(Object.entries(res.hosts).map(([name, o]) => [name, hostPlanOf(o)]));
  return planned({ version: PLAN_VERSION, tool: TOOL_VERSION, created: new Date().toISOString(), planKey: planKeyId(), ...meta, hosts });
}

/**
 * The plan writer: 0600 (it names hosts, paths and changes), and masked whoever built the plan.
 * Written beside the target and renamed over it: a file that was there keeps no mode of its own
 * (writeFileSync's mode applies only to a file it creates), and no reader sees half a plan.
 */
export function writePlan(file: string, plan: PlanFile): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, JSON.stringify(planned(plan), null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export function readPlan(file: string): PlanFile {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(`plan ${file}: ${code === 'ENOENT' ? 'no such file' : `not a plan file (${(err as Error).message})`}`);
  }
  const p = data as Partial<PlanFile>;
  if (!p || p.version !== PLAN_VERSION || typeof p.hosts !== 'object' || !p.created || !p.inventory || !p.playbook) {
    throw new InputError(`plan ${file}: not a provision plan of version ${PLAN_VERSION}`);
  }
  return p as PlanFile;
}

/**
 * A change as one comparable line. Creating and updating a file are one verb: on a fresh host a
 * package may lay down a default file between the plan and the run; what is written is the same.
 * Content itself is compared through the state fingerprints, not here.
 */
function changeKey(t: PlannedTask, c: Change): string {
  const action = c.kind === 'file' && /^(create|update content)\b/.test(c.action) ? 'write content' : c.action;
  return `${t.handler ? 'handler ' : ''}${t.role ?? ''}/${t.task}: ${c.kind} ${c.target}: ${action}`;
}

/** The same lines from a run's --json events, per host. */
export function changeLinesFromEvents(events: Array<Record<string, unknown>>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of events) {
    if (e.kind !== 'task-result' || e.status !== 'changed') continue;
    const t: PlannedTask = { task: String(e.task), role: e.role as string | undefined, module: String(e.module), handler: Boolean(e.handler), changes: e.changes as Change[] };
    (out[String(e.host)] ??= []).push(...t.changes.map((c) => changeKey(t, c)));
  }
  return out;
}

export function changeLines(h: HostPlan): string[] {
  return h.tasks.flatMap((t) => t.changes.map((c) => changeKey(t, c)));
}

/** What differs between the plan's view of a host and now: state fingerprints, then the changes. */
export function hostDrift(planned: HostPlan, now: HostPlan): string[] {
  const out: string[] = [];
  if (now.unreachable) return [`unreachable now: ${now.unreachable}`];
  if (planned.unreachable) return [`was unreachable when planned`];
  const keys = new Set([...Object.keys(planned.fingerprints), ...Object.keys(now.fingerprints)]);
  for (const k of [...keys].sort()) {
    const a = planned.fingerprints[k];
    const b = now.fingerprints[k];
    if (a === b) continue;
    if (a === undefined) out.push(`state read now but not in the plan: ${k}`);
    else if (b === undefined) out.push(`state in the plan but not read now: ${k}`);
    else out.push(`changed since the plan: ${k}`);
  }
  const before = changeLines(planned);
  const after = changeLines(now);
  for (const l of before.filter((x) => !after.includes(x))) out.push(`planned change no longer computed: ${l}`);
  for (const l of after.filter((x) => !before.includes(x))) out.push(`change not in the plan: ${l}`);
  return out;
}
