import type { HostSession } from '../executor/index.js';
import { ProvisionError } from '../util/errors.js';
import { isUp, parseShowStat, runtimeCommand, runtimeError, setStateLine, SHOW_STAT, type ServerState } from './haproxy-runtime.js';
import { parseState, readStateScript, releasesToPrune, type AppLayout, type HostReleases } from './host-state.js';
import type { DeployPlan, HostStep } from './plan.js';
import { APP_UNIT_PATH, asAppUser, installScript, pruneScript, switchScript } from './scripts.js';

/** A web host as a deploy works on it. */
export interface WebTarget {
  name: string;
  session: HostSession;
  layout: AppLayout;
  user: string;
  build?: string;
  migrate?: string;
  /** Polls the app through Nginx on the host until 200 or its bound (scripts.healthScript). */
  healthCheck: string;
  drainTimeoutMs: number;
  healthTimeoutMs: number;
  keepReleases: number;
}

export interface Balancer {
  name: string;
  session: HostSession;
}

export interface DeployEvent {
  kind: 'deploy';
  host?: string;
  step: string;
  detail?: string;
  ms?: number;
}

/** Where a release comes from: how a host that lacks it gets it (a script, and its stdin: the release's bytes, or a deploy key). */
export interface ReleaseSource {
  id: string;
  /** What the user named (a path's base name, a git ref). */
  label: string;
  install(web: WebTarget): { cmd: string; stdin: Buffer };
  /** The failure of install said in the source's own terms (a refused host key). */
  explain?(message: string): string;
}

export interface RollOptions {
  /** The release, asked for only when a host must receive it (a rollback has none: its releases are there). */
  source?: ReleaseSource;
  log: (e: DeployEvent) => void;
  sleep?: (ms: number) => Promise<void>;
}

export interface RollResult {
  /** Hosts that now run their step's `to`. */
  switched: string[];
  /** Why the rollout stopped (undefined: every batch went through). */
  failure?: string;
}

/** A step of a deploy that failed on a host: said in one line, exit 1 (never called a bug). */
export class DeployError extends ProvisionError {}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function run(session: HostSession, cmd: string, what: string, stdin?: Buffer, timeoutMs?: number): Promise<string> {
  const r = await session.exec(cmd, { stdin, timeoutMs });
  if (r.code !== 0) throw new DeployError(`${what}: exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(-2000)}`);
  return r.stdout;
}

export async function readReleases(web: Pick<WebTarget, 'session' | 'layout'>): Promise<HostReleases> {
  return parseState(await run(web.session, readStateScript(web.layout, APP_UNIT_PATH), 'reading the releases'));
}

/** Sends the release to a host that lacks it (and builds it there when asked). */
export async function installRelease(web: WebTarget, id: string, opts: Pick<RollOptions, 'source' | 'log'>): Promise<void> {
  const src = opts.source;
  if (!src || src.id !== id) throw new DeployError(`${web.name}: release ${id} is not on the host and there is nothing to send`);
  const t0 = Date.now();
  const { cmd, stdin } = src.install(web);
  let out: string;
  try {
    out = await run(web.session, cmd, `${web.name}: installing release ${id}`, stdin);
  } catch (err) {
    if (err instanceof DeployError && src.explain) throw new DeployError(`${web.name}: ${src.explain(err.message)}`);
    throw err;
  }
  opts.log({ kind: 'deploy', host: web.name, step: out.trim().split('\n').at(-1) === 'present' ? 'release already there' : 'release installed', detail: id, ms: Date.now() - t0 });
}

/** `app_migrate_command` in the new release, as the app user with the app's environment. */
export async function migrate(web: WebTarget, id: string, opts: Pick<RollOptions, 'log'>): Promise<void> {
  if (!web.migrate) return;
  const t0 = Date.now();
  const cmd = asAppUser({ user: web.user, cwd: `${web.layout.releases}/${id}`, cmd: web.migrate, envFile: web.layout.envFile });
  const r = await web.session.exec(cmd, {});
  if (r.code !== 0) throw new DeployError(`migration failed on ${web.name} (exit ${r.code}): ${(r.stderr.trim() || r.stdout.trim()).slice(-2000)}`);
  opts.log({ kind: 'deploy', host: web.name, step: 'migrated', detail: id, ms: Date.now() - t0 });
}

async function setState(lbs: Balancer[], hosts: string[], state: ServerState): Promise<void> {
  if (hosts.length === 0) return;
  await Promise.all(
    lbs.map(async (lb) => {
      const out = await run(lb.session, runtimeCommand(hosts.map((h) => setStateLine(h, state)).join('; ')), `${lb.name}: set ${hosts.join(', ')} ${state}`);
      const err = runtimeError(out);
      if (err) throw new DeployError(`${lb.name}: HAProxy refused "set server … state ${state}" for ${hosts.join(', ')}: ${err}`);
    }),
  );
}

async function serverStats(lb: Balancer) {
  return parseShowStat(await run(lb.session, runtimeCommand(SHOW_STAT), `${lb.name}: show stat`));
}

/** Polls every load balancer until `done` holds for each host, or the bound runs out (false). */
async function waitOnBalancers(lbs: Balancer[], hosts: string[], done: (stat: ReturnType<typeof parseShowStat>, host: string) => boolean, boundMs: number, sleep: (ms: number) => Promise<void>): Promise<boolean> {
  const end = Date.now() + boundMs;
  for (;;) {
    const stats = await Promise.all(lbs.map(serverStats));
    if (stats.every((s) => hosts.every((h) => done(s, h)))) return true;
    if (Date.now() >= end) return false;
    await sleep(250);
  }
}

const key = (h: string) => `web/${h}`;

/** Switch and restart, then the health check through Nginx; the check's last answer when it failed. */
async function switchAndCheck(web: WebTarget, id: string): Promise<string | undefined> {
  await run(web.session, switchScript(web.layout, id), `${web.name}: switching to ${id}`);
  const r = await web.session.exec(web.healthCheck, { timeoutMs: web.healthTimeoutMs + 30_000 });
  return r.code === 0 ? undefined : r.stdout.trim() || r.stderr.trim() || `exit ${r.code}`;
}

/**
 * The rolling deploy: batch by batch, each host drained on every load balancer (new requests go to
 * the others; the ones it serves finish, bounded), switched, restarted, checked healthy through
 * Nginx, made ready again, and back UP in HAProxy before the next batch leaves. A host whose check
 * fails goes back to the release it ran (healthy again before it takes traffic) and the rollout
 * stops: the hosts of later batches keep what they run.
 */
export async function rollOut(plan: DeployPlan, webs: Map<string, WebTarget>, lbs: Balancer[], opts: RollOptions): Promise<RollResult> {
  const sleep = opts.sleep ?? defaultSleep;
  const steps = new Map<string, HostStep>(plan.steps.map((s) => [s.host, s]));
  const switched: string[] = [];
  for (const batch of plan.batches) {
    const hosts = batch.map((h) => webs.get(h)!);
    const t0 = Date.now();
    await Promise.all(hosts.map((w) => (steps.get(w.name)!.ship ? installRelease(w, steps.get(w.name)!.to, opts) : undefined)));

    await setState(lbs, batch, 'drain');
    opts.log({ kind: 'deploy', host: batch.join(','), step: 'drained', detail: lbs.map((l) => l.name).join(',') });
    const drainBound = Math.max(...hosts.map((w) => w.drainTimeoutMs));
    const idle = await waitOnBalancers(lbs, batch, (s, h) => (s.get(key(h))?.scur ?? 0) === 0, drainBound, sleep);
    if (!idle) opts.log({ kind: 'deploy', host: batch.join(','), step: 'drain bound reached', detail: `sessions still open after ${drainBound / 1000} s: switching anyway` });

    const failures = new Map<string, string>();
    await Promise.all(
      hosts.map(async (w) => {
        const step = steps.get(w.name)!;
        const bad = await switchAndCheck(w, step.to);
        if (!bad) {
          switched.push(w.name);
          opts.log({ kind: 'deploy', host: w.name, step: 'switched and healthy', detail: step.to });
          return;
        }
        failures.set(w.name, bad);
        opts.log({ kind: 'deploy', host: w.name, step: 'health check failed', detail: `${step.to}: ${bad}` });
        if (!step.from) {
          opts.log({ kind: 'deploy', host: w.name, step: 'no release to go back to', detail: 'left drained' });
          return;
        }
        const again = await switchAndCheck(w, step.from);
        opts.log({ kind: 'deploy', host: w.name, step: again ? 'rollback unhealthy too' : 'rolled back and healthy', detail: again ? `${step.from}: ${again}` : step.from });
        if (again) failures.set(w.name, `${bad}; and after going back to ${step.from}: ${again}`);
      }),
    );
    // Back into the pool: every host that is healthy on some release (a failed host without one stays drained).
    const ready = batch.filter((h) => !failures.has(h) || steps.get(h)!.from);
    await setState(lbs, ready, 'ready');
    const up = await waitOnBalancers(lbs, ready, (s, h) => isUp(s.get(key(h))), Math.max(...hosts.map((w) => w.healthTimeoutMs)), sleep);
    if (!up) return { switched, failure: `${ready.join(', ')} not back UP on the load balancers in time` };
    opts.log({ kind: 'deploy', host: batch.join(','), step: 'ready', ms: Date.now() - t0 });
    if (failures.size) {
      return { switched, failure: [...failures].map(([h, why]) => `${h}: release ${steps.get(h)!.to} failed its health check (${why})${steps.get(h)!.from ? `, back on ${steps.get(h)!.from}` : ''}`).join('; ') };
    }
  }
  return { switched };
}

/** Removes releases beyond `keep` on a host (never the current one nor the one a rollback goes to). */
export async function prune(web: WebTarget, opts: Pick<RollOptions, 'log'>): Promise<void> {
  const state = await readReleases(web);
  const gone = releasesToPrune(state, web.keepReleases);
  if (gone.length === 0) return;
  await run(web.session, pruneScript(web.layout, gone), `${web.name}: removing old releases`);
  opts.log({ kind: 'deploy', host: web.name, step: 'old releases removed', detail: gone.join(' ') });
}
