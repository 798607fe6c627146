import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { factsToJSON, type Facts } from '../facts/index.js';
import type { Change } from '../modules/index.js';
import type { RunResult } from '../executor/index.js';
import { HostRun } from '../executor/index.js';
import { InputError } from '../util/errors.js';
import { maskDeep } from '../util/secrets.js';

export const PLAN_VERSION = 1;
export const TOOL_VERSION = 'provision 0.1.0';

export interface PlannedTask {
  task: string;
  role?: string;
  module: string;
  handler: boolean;
  changes: Change[];
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
  inventory: string;
  playbook: string;
  limit?: string;
  tags?: string[];
  skipTags?: string[];
  hosts: Record<string, HostPlan>;
}

function hash(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
}

/** Facts that describe the host's state (not the clock): a change in these is drift. */
export function factsFingerprint(f: Facts): string {
  const { now: _now, aptUpdatedAt: _apt, services: _s, ...rest } = factsToJSON(f) as Facts & Record<string, unknown>;
  return hash(rest);
}

/** Per host: the changes a check run predicted, and what they were computed from. */
export function planFromRun(res: RunResult, meta: Omit<PlanFile, 'version' | 'tool' | 'created' | 'hosts'>): PlanFile {
  const hosts: Record<string, HostPlan> = {};
  for (const [name, r] of res.hosts) {
    if (!(r instanceof HostRun)) {
      hosts[name] = { unreachable: r.unreachable, tasks: [], fingerprints: {} };
      continue;
    }
    const failed = r.outcomes.find((o) => o.status === 'failed');
    hosts[name] = {
      unreachable: r.unreachable,
      failed: failed ? `${failed.task.name}: ${failed.msg ?? ''}` : undefined,
      tasks: r.outcomes
        .filter((o) => o.status === 'changed')
        .map((o) => ({ task: o.task.name, role: o.task.role, module: o.task.module, handler: o.handler, changes: o.changes })),
      fingerprints: { facts: factsFingerprint(r.facts), ...Object.fromEntries([...r.observed].sort(([a], [b]) => a.localeCompare(b))) },
    };
  }
  return maskDeep({ version: PLAN_VERSION, tool: TOOL_VERSION, created: new Date().toISOString(), ...meta, hosts });
}

export function writePlan(file: string, plan: PlanFile): void {
  writeFileSync(file, JSON.stringify(plan, null, 2) + '\n', { mode: 0o600 });
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
