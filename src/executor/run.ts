import type { Facts } from '../facts/index.js';
import { DEFAULT_FORKS } from './forks.js';
import { prepareHosts, selectHosts, type Host, type Inventory } from '../inventory/index.js';
import { checkRoleVars, unreadVarWarnings } from '../roles/index.js';
import { mapLimit } from '../util/concurrency.js';
import { errorMessage, ModuleError, PlaybookError, ProvisionError } from '../util/errors.js';
import { maskedSink, NO_EVENTS, type EventSink, type RunEvent } from './events.js';
import { expandPlay, type HostPlay, type PlayExpansion } from './expand.js';
import { HostRun, PlayShared, unreachableOutcome, type HostOutcome, type RunFlags } from './host-run.js';
import { checkDelegates, checkSecretsInParams, everyTask, roleNodes, type Playbook } from './playbook.js';
import { playTargets, unknownPlayHosts } from './targets.js';
import { SshConnector, type Connector, type HostSession } from './session.js';

/**
 * `provision apply`: after a silent check run of every host, whether this host gets the real run
 * (on the same session and facts). Called once per selected host, unreachable ones included, when
 * every host's check is done: `all` holds them all, so a gate can refuse every host for one
 * (--all-or-nothing).
 */
export type Gate = (host: string, check: HostOutcome, all: Readonly<Record<string, HostOutcome>>) => boolean | Promise<boolean>;

export interface RunOptions extends RunFlags {
  inventory: Inventory;
  playbook: Playbook;
  limit?: string;
  forks?: number;
  serial?: number;
  /** Every event of the run, masked on the way (maskedSink). */
  reporter: EventSink;
  /** How hosts are reached (default: SSH). Unit tests give a recording fake. */
  connector?: Connector;
  /** Check first, then run for real on the hosts the gate lets through (see Gate). Needs check: false. */
  gate?: Gate;
  /** A play naming a host or group the inventory does not have is an error (exit 4), not a warning. */
  strict?: boolean;
}

export { DEFAULT_FORKS } from './forks.js';

export type Phases = NonNullable<Extract<RunEvent, { kind: 'recap' }>['phases']>;

/** A run as data: per host its outcome (counts, task outcomes, observed state, why it stopped). */
export interface RunResult {
  /** The run's hosts (with a gate: the hosts of the real run). */
  hosts: Record<string, HostOutcome>;
  /** With a gate: the check run of every selected host, as the gate saw it. */
  checks?: Record<string, HostOutcome>;
  wallMs: number;
  phases: Phases;
  /** SSH exec round trips per reachable host. */
  roundTrips: Record<string, number>;
}

/** Roles' checks of their vars (src/roles/validate.ts), before any connection: bad input never half-applies a host. */
export function validateRoleVars(inventory: Inventory, playbook: Playbook, hosts: string[]): void {
  // Each play as the hosts it selects (a play that selects none checks nothing), its imported roles among its roles.
  // An import with vars: they are the role's, over the play's, checked as written (a template as the
  // string it is; the role's schema checks the rendered value again when the play runs).
  const plays = playbook.plays.flatMap((play) => {
    const targets = playTargets(inventory, play.hosts).hosts.filter((h) => hosts.includes(h));
    if (!targets.length) return [];
    const imports = roleNodes(play.body);
    const withVars = imports.filter((n) => Object.keys(n.vars).length);
    const plain = [...new Set([...play.roles, ...imports.filter((n) => !withVars.includes(n)).map((n) => n.name)])];
    return [
      { ...play, hosts: targets.join(','), roles: plain },
      ...withVars.map((n) => ({
        ...play,
        hosts: targets.join(','),
        roles: [n.name],
        vars: { ...play.vars, ...n.vars },
      })),
    ];
  });
  checkRoleVars(inventory, { ...playbook, plays }, hosts);
}

export interface Connected {
  host: Host;
  session: HostSession;
  facts: Facts;
  connectMs: number;
  factsMs: number;
}

/**
 * Connect to hosts in parallel and read their facts; unreachable ones are reported, not thrown.
 * `then` runs for each host as soon as its facts are in (no waiting for the slowest host).
 */
export async function connectHosts(
  connector: Connector,
  hosts: Host[],
  forks: number,
  sink: EventSink,
  then?: (c: Connected) => Promise<void>,
): Promise<{ up: Map<string, Connected>; down: Map<string, string> }> {
  const up = new Map<string, Connected>();
  const down = new Map<string, string>();
  await mapLimit(hosts, forks, async (host) => {
    const t0 = Date.now();
    let c: Connected;
    try {
      const session = await connector.open(host);
      const t1 = Date.now();
      const facts = await session.facts();
      c = { host, session, facts, connectMs: t1 - t0, factsMs: Date.now() - t1 };
      up.set(host.name, c);
      sink.emit({ kind: 'host-connected', host: host.name, ms: Date.now() - t0 });
    } catch (err) {
      const reason = errorMessage(err);
      down.set(host.name, reason);
      sink.emit({ kind: 'host-unreachable', host: host.name, reason, hint: err instanceof ProvisionError ? err.hint : undefined });
      return;
    }
    if (then) await then(c);
  });
  return { up, down };
}

/** A host ready for plays: its run and its plays expanded (once) for it. */
interface Prepared {
  run: HostRun;
  plays: Map<number, PlayExpansion>;
}

/**
 * Every play in order over the hosts it selects that are still going (serial batches, forks,
 * max_fail_percentage): play 1 on every host before play 2 on any.
 */
async function runPlays(opts: RunOptions, ready: Map<string, Prepared>, forks: number, sink: EventSink, names: string[], release: boolean): Promise<void> {
  for (const [pi, play] of opts.playbook.plays.entries()) {
    const selected = playTargets(opts.inventory, play.hosts);
    const targets = selected.hosts.filter((h) => ready.has(h) && !ready.get(h)!.run.stopped);
    if (targets.length === 0) {
      // One line, as Ansible's "skipping: no hosts matched"; a play no host reached is no play skipped.
      const inRun = selected.hosts.filter((h) => names.includes(h));
      if (inRun.length === 0) sink.emit({ kind: 'play-skipped', play: play.name, reason: selected.hosts.length ? `none of its hosts (${play.hosts}) is selected by --limit` : `no host matches "${play.hosts}"` });
      continue;
    }
    sink.emit({ kind: 'play-start', play: play.name, hosts: targets });
    // run_once tasks are shared by the play's hosts.
    const shared = new PlayShared();
    const serial = opts.serial ?? play.serial ?? targets.length;
    for (let i = 0; i < targets.length; i += serial) {
      const batch = targets.slice(i, i + serial);
      await mapLimit(batch, forks, async (h) => {
        const { run, plays } = ready.get(h)!;
        await run.runPlay(play.name, plays.get(pi)!, shared);
        if (release) await run.session.release?.();
      });
      const failedInBatch = batch.filter((h) => ready.get(h)!.run.failed || ready.get(h)!.run.unreachable).length;
      if (play.maxFailPercentage !== undefined && (failedInBatch / batch.length) * 100 > play.maxFailPercentage) {
        sink.emit({ kind: 'warning', msg: `play "${play.name}": ${failedInBatch} of ${batch.length} hosts failed, over max_fail_percentage ${play.maxFailPercentage}; stopping the run` });
        return;
      }
    }
  }
}

/** The expansions' plays that could be expanded, for reading their state in one go. */
const expandedPlays = (plays: Map<number, PlayExpansion>): HostPlay[] => [...plays.values()].flatMap((x) => (x.ok ? [x.play] : []));

/** The hosts delegate_to names. */
const delegateHosts = (playbook: Playbook): string[] => everyTask(playbook).flatMap((t) => (t.delegateTo ? [t.delegateTo.host] : []));

export async function runPlaybook(opts: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const startupMs = Math.round(process.uptime() * 1000);
  const { inventory, playbook, gate } = opts;
  if (gate && opts.check) throw new Error('runPlaybook: a gate leads to a real run (check: false)');
  const names = selectHosts(inventory, opts.limit);
  const misspelt = unknownPlayHosts(inventory, playbook);
  if (opts.strict && misspelt.length) throw new PlaybookError(misspelt.join('\n'), 'fix the play\'s hosts, or run without --strict to skip such plays with a warning');
  // A host tasks are delegated to is connected to as well (only its connection is used, not its vars).
  checkDelegates(inventory, playbook);
  prepareHosts(inventory, [...new Set([...names, ...delegateHosts(playbook)])]);
  validateRoleVars(inventory, playbook, names);
  checkSecretsInParams(inventory, playbook, names);
  const forks = opts.forks ?? Math.min(Math.max(names.length, 1), DEFAULT_FORKS);
  // More hosts than forks: a host's connection is closed whenever it waits for the others (after its
  // state read, after each play) and opened again only when a later task needs it, so the controller
  // holds at most `forks` connections whatever the number of hosts; a converged host never reopens.
  const release = names.length > forks;
  const sink = maskedSink(opts.reporter);
  // Under a gate the check run is silent: what is shown is the real run of the hosts let through.
  const first = gate ? NO_EVENTS : sink;
  const runStart = (hosts: string[], check: boolean): RunEvent => ({ kind: 'run-start', inventory: inventory.file, playbook: playbook.file, hosts, check, time: new Date().toISOString() });
  first.emit(runStart(names, opts.check));
  // Vars nothing reads: warnings of the run that is shown (under a gate, of the real run).
  const unread = [...misspelt, ...unreadVarWarnings(inventory, playbook)];
  for (const msg of unread) first.emit({ kind: 'warning', msg });

  // The state read kept on each host makes a converged host one round trip; --check only uses it.
  const connector = opts.connector ?? new SshConnector(inventory, { stateRead: opts.check ? 'use' : 'keep' });
  const hosts: Record<string, HostOutcome> = {};
  let checks: Record<string, HostOutcome> | undefined;
  const roundTrips: Record<string, number> = {};
  const phases: Phases = { startupMs, hosts: {} };
  const connected = new Map<string, Connected>();
  let shown = !gate;
  try {
    // Per host, as soon as its facts are in: expand every play once and read all their state in
    // one round trip; on a converged fleet that one read is all the run needs.
    const ready = new Map<string, Prepared>();
    // delegate_to: a host of the run lends its session; another host of the inventory is connected once, when first asked.
    const opened = new Map<string, Promise<HostSession>>();
    const delegate = (name: string): Promise<HostSession> => {
      const mine = connected.get(name);
      if (mine) return Promise.resolve(mine.session);
      let s = opened.get(name);
      if (!s) {
        s = connector.open(inventory.hosts.get(name)!).catch((err: unknown) => {
          throw new ModuleError(`delegate_to ${name}: ${errorMessage(err)}`);
        });
        opened.set(name, s);
      }
      return s;
    };
    const prepare = async (c: Connected, flags: RunFlags, sink: EventSink, plays?: Map<number, PlayExpansion>): Promise<void> => {
      const h = c.host.name;
      const run = new HostRun(c.host, c.session, c.facts, flags, sink, delegate);
      plays ??= new Map(
        playbook.plays.flatMap((play, pi) => (playTargets(inventory, play.hosts).hosts.includes(h) ? [[pi, expandPlay(play, c.host, c.facts, inventory, playbook.file)] as const] : [])),
      );
      ready.set(h, { run, plays });
      const t = Date.now();
      await run.prepare(expandedPlays(plays));
      phases.hosts[h]!.readMs ??= Date.now() - t;
    };
    const { down } = await connectHosts(connector, names.map((n) => inventory.hosts.get(n)!), forks, first, async (c) => {
      connected.set(c.host.name, c);
      phases.hosts[c.host.name] = { connectMs: c.connectMs, factsMs: c.factsMs };
      await prepare(c, gate ? { ...opts, check: true, guard: undefined } : opts, first);
      if (release) await c.session.release?.();
    });
    await runPlays(opts, ready, forks, first, names, release);
    const outcomes = (): Record<string, HostOutcome> =>
      Object.fromEntries(names.map((h) => [h, ready.get(h)?.run.outcome() ?? unreachableOutcome(down.get(h) ?? 'not connected')]));

    if (gate) {
      checks = outcomes();
      const all = checks;
      const verdicts = await Promise.all(names.map(async (h) => (await gate(h, all[h]!, all)) && connected.has(h) && !all[h]!.unreachable));
      const through = names.filter((_, i) => verdicts[i]);
      if (through.length) {
        shown = true;
        sink.emit(runStart(through, false));
        for (const msg of unread) sink.emit({ kind: 'warning', msg });
        const checked = new Map(ready);
        ready.clear();
        await mapLimit(through, forks, async (h) => {
          const c = connected.get(h)!;
          sink.emit({ kind: 'host-connected', host: h, ms: c.connectMs + c.factsMs });
          // The same session, facts and expansions; a fresh read of the state, which the guard checks.
          await prepare(c, opts, sink, checked.get(h)!.plays);
          if (release) await c.session.release?.();
        });
        await runPlays(opts, ready, forks, sink, through, release);
      }
      for (const h of through) hosts[h] = ready.get(h)!.run.outcome();
    } else {
      Object.assign(hosts, outcomes());
    }
    for (const [h, c] of connected) roundTrips[h] = c.session.roundTrips;
  } finally {
    await connector.close();
  }
  const wallMs = Date.now() - t0;
  if (shown) {
    sink.emit({ kind: 'recap', hosts: Object.fromEntries(Object.entries(hosts).map(([h, o]) => [h, o.counts])), wallMs, check: opts.check, roundTrips, phases });
  }
  return { hosts, checks, wallMs, phases, roundTrips };
}
