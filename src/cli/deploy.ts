import { SshConnector, type HostSession } from '../executor/index.js';
import { prepareHosts, selectHosts, type Host, type Inventory } from '../inventory/index.js';
import { EXAMPLE_APP, type AppVars } from '../roles/app/index.js';
import { roleVars } from '../roles/index.js';
import { GROUPS, privateAddress } from '../roles/shared.js';
import { appLayout, previousRelease, type HostReleases } from '../deploy/host-state.js';
import { describePlan, NoPreviousRelease, planDeploy, planRollback, type DeployPlan } from '../deploy/plan.js';
import { buildLocal, localRelease } from '../deploy/release.js';
import { checkRef, lsRemoteScript, readDeployKey, resolveRef, type GitSource } from '../deploy/git.js';
import { explainGitFailure, gitSource, localSource } from '../deploy/sources.js';
import { DeployError, installRelease, migrate, prune, readReleases, rollOut, type Balancer, type DeployEvent, type ReleaseSource, type WebTarget } from '../deploy/rolling.js';
import { healthScript, healthUrl } from '../deploy/scripts.js';
import { InputError, errorMessage } from '../util/errors.js';
import { EXIT } from './exit-codes.js';
import { loadInventory } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { printErr, printOut } from './output.js';
import '../roles/builtin.js';

export interface DeployOptions extends CommonOptions {
  release?: string;
  check?: boolean;
}

interface Fleet {
  webs: Map<string, WebTarget>;
  lbs: Balancer[];
  vars: Map<string, AppVars>;
  connector: SshConnector;
}

function webTarget(host: Host, v: AppVars, session: HostSession): WebTarget {
  const url = healthUrl({ address: privateAddress(host), port: v.http_port, path: v.app_health_path, tls: v.backend_tls });
  const timeoutMs = v.deploy_health_timeout * 1000;
  return {
    name: host.name,
    session,
    layout: appLayout(v.app_dir),
    user: v.app_user,
    build: v.app_build || undefined,
    migrate: v.app_migrate_command || undefined,
    healthCheck: healthScript({ url, hostHeader: v.domain, timeoutMs }),
    drainTimeoutMs: v.deploy_drain_timeout * 1000,
    healthTimeoutMs: timeoutMs,
    keepReleases: v.app_keep_releases,
  };
}

/** The web servers (group webservers, narrowed by --limit) and their app vars, checked before any connection. */
function webHosts(inv: Inventory, o: CommonOptions): { hosts: Host[]; vars: Map<string, AppVars> } {
  const inGroup = new Set(inv.groups.get(GROUPS.webservers) ?? []);
  const names = selectHosts(inv, o.limit).filter((n) => inGroup.has(n));
  if (names.length === 0) throw new InputError(`no web servers to deploy to: group "${GROUPS.webservers}"${o.limit ? ` with --limit ${o.limit}` : ''} is empty`);
  const hosts = names.map((n) => inv.hosts.get(n)!);
  const vars = new Map(hosts.map((h) => [h.name, roleVars('app', h, { vars: {} }) as unknown as AppVars]));
  return { hosts, vars };
}

/** One connection per web server and load balancer; any unreachable one stops everything before a change. */
async function connect(inv: Inventory, hosts: Host[], vars: Map<string, AppVars>, withBalancers: boolean): Promise<Fleet | { unreachable: Map<string, string>; connector: SshConnector }> {
  const lbHosts = withBalancers ? (inv.groups.get(GROUPS.loadbalancers) ?? []).map((n) => inv.hosts.get(n)!) : [];
  prepareHosts(inv, [...hosts, ...lbHosts].map((h) => h.name));
  const connector = new SshConnector(inv);
  const unreachable = new Map<string, string>();
  const sessions = new Map<string, HostSession>();
  await Promise.all(
    [...hosts, ...lbHosts].map(async (h) => {
      try {
        sessions.set(h.name, await connector.open(h));
      } catch (err) {
        unreachable.set(h.name, errorMessage(err));
      }
    }),
  );
  if (unreachable.size) return { unreachable, connector };
  return {
    webs: new Map(hosts.map((h) => [h.name, webTarget(h, vars.get(h.name)!, sessions.get(h.name)!)])),
    lbs: lbHosts.map((h) => ({ name: h.name, session: sessions.get(h.name)! })),
    vars,
    connector,
  };
}

function reporter(o: CommonOptions): (e: DeployEvent) => void {
  return (e) => {
    if (o.json) printOut(JSON.stringify(e));
    else printOut(`${e.host ? `${e.host}: ` : ''}${e.step}${e.detail ? ` (${e.detail})` : ''}${e.ms !== undefined ? ` [${(e.ms / 1000).toFixed(1)} s]` : ''}`);
  };
}

async function withFleet(o: CommonOptions, withBalancers: boolean, fn: (fleet: Fleet) => Promise<number>): Promise<number> {
  const inv = loadInventory(requireInventory(o));
  const { hosts, vars } = webHosts(inv, o);
  const fleet = await connect(inv, hosts, vars, withBalancers);
  try {
    if ('unreachable' in fleet) {
      for (const [h, why] of fleet.unreachable) printErr(`${h}: UNREACHABLE: ${why}`);
      printErr('provision: nothing deployed: every web server and load balancer must be reachable first');
      return EXIT.UNREACHABLE;
    }
    return await fn(fleet);
  } finally {
    await fleet.connector.close();
  }
}

async function statesOf(fleet: Fleet): Promise<Array<{ host: string; state: HostReleases }>> {
  const out = await Promise.all([...fleet.webs.values()].map(async (w) => ({ host: w.name, state: await readReleases(w) })));
  const bare = out.filter((s) => !s.state.unit).map((s) => s.host);
  if (bare.length) throw new DeployError(`the app role has not run on ${bare.join(', ')} (no app unit): converge them first (provision --inventory …)`);
  return out;
}

/** Batches, drain, switch, health, ready; then old releases pruned. The exit code of the whole. */
async function roll(fleet: Fleet, plan: DeployPlan, o: CommonOptions & { check?: boolean }, release: ReleaseSource | undefined, verb: string): Promise<number> {
  const log = reporter(o);
  for (const line of describePlan(plan, verb)) log({ kind: 'deploy', step: line });
  if (plan.batches.length === 0) return EXIT.OK;
  if (o.check) return EXIT.CHANGED;
  if (fleet.lbs.length === 0) log({ kind: 'deploy', step: `no host in group ${GROUPS.loadbalancers}: switching without draining` });
  const opts = { log, source: release };
  const t0 = Date.now();
  if (release) {
    // Migrations run once, on the first host to change, before any host switches.
    const first = fleet.webs.get(plan.batches[0]![0]!)!;
    if (first.migrate) {
      try {
        const step = plan.steps.find((s) => s.host === first.name)!;
        if (step.ship) {
          await installRelease(first, release.id, opts);
          step.ship = false;
        }
        await migrate(first, release.id, opts);
      } catch (err) {
        printErr(`provision: ${errorMessage(err)}: nothing switched`);
        return EXIT.FAILED;
      }
    }
  }
  const res = await rollOut(plan, fleet.webs, fleet.lbs, opts);
  if (res.failure) {
    printErr(`provision: ${verb} stopped: ${res.failure}${res.switched.length ? `; switched: ${res.switched.join(', ')}` : '; no host switched'}`);
    return EXIT.FAILED;
  }
  for (const h of res.switched) await prune(fleet.webs.get(h)!, opts);
  log({ kind: 'deploy', step: `${verb} done`, detail: `${res.switched.length} host(s)`, ms: Date.now() - t0 });
  return EXIT.CHANGED;
}

/** One value of an app var for every web server (a release goes to all of them): else bad input naming the var. */
function same<K extends keyof AppVars>(hosts: Host[], vars: Map<string, AppVars>, name: K, hint: string): AppVars[K] {
  const values = new Set(hosts.map((h) => JSON.stringify(vars.get(h.name)![name])));
  if (values.size > 1) throw new InputError(`${String(name)} differs between web servers (${[...values].join(', ')}): ${hint}`);
  return vars.get(hosts[0]!.name)![name];
}

/** The git repository of the web servers, its deploy key read and its host key checked, before any connection. */
function gitSourceOf(hosts: Host[], vars: Map<string, AppVars>): GitSource {
  const url = same(hosts, vars, 'app_repository', 'one repository for all');
  const hostKey = same(hosts, vars, 'app_repository_host_key', 'one git server');
  const keyFile = same(hosts, vars, 'app_deploy_key_file', 'one deploy key');
  if (!keyFile) throw new InputError('app_deploy_key_file: required with app_repository (the deploy key on the control machine)');
  if (!hostKey) throw new InputError("app_repository_host_key: required with app_repository (the git server's host key, a known_hosts line)");
  return { url, hostKey, key: readDeployKey(keyFile) };
}

/**
 * The commit REF names, resolved once, by `git ls-remote` on the first web server (as the app user,
 * with the deploy key and the pinned host key, exactly as the fetch will be): every host gets the
 * same commit even if the branch moves during the deploy. A full commit is taken as it is.
 */
async function resolveCommit(web: WebTarget, src: GitSource, ref: string): Promise<string> {
  const direct = resolveRef('', ref);
  if (direct) return direct;
  const r = await web.session.exec(lsRemoteScript(web.layout, web.user, src), { stdin: Buffer.from(src.key.reveal()), timeoutMs: 120_000 });
  if (r.code !== 0) throw new DeployError(`${web.name}: ${explainGitFailure(`git ls-remote ${src.url}: exit ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).slice(-1000)}`, src.url)}`);
  const commit = resolveRef(r.stdout, ref);
  if (!commit) throw new DeployError(`${ref}: no such branch or tag in ${src.url} (a commit must be given in full, 40 hex digits): nothing deployed`);
  return commit;
}

/** `provision deploy`: the release (--release PATH|REF, else app_source or app_ref) to every web server, rolling. */
export async function deployCommand(o: DeployOptions): Promise<number> {
  const inv = loadInventory(requireInventory(o));
  const { hosts, vars } = webHosts(inv, o);
  const batch = vars.get(hosts[0]!.name)!.deploy_batch;
  const repository = same(hosts, vars, 'app_repository', 'one repository for all');
  if (repository) {
    const ref = checkRef(o.release ?? same(hosts, vars, 'app_ref', 'give --release REF'), o.release ? '--release' : 'app_ref');
    const src = gitSourceOf(hosts, vars);
    return withFleet(o, true, async (fleet) => {
      const states = await statesOf(fleet);
      const first = fleet.webs.get(hosts[0]!.name)!;
      const commit = await resolveCommit(first, src, ref);
      reporter(o)({ kind: 'deploy', step: `release ${ref} is commit ${commit}`, detail: `${src.url}, resolved on ${first.name}` });
      return roll(fleet, planDeploy(states, commit, batch), o, gitSource(src, commit, ref), `deploy ${ref}`);
    });
  }
  const sources = new Set(hosts.map((h) => vars.get(h.name)!.app_source));
  if (!o.release && sources.size > 1) throw new InputError(`app_source differs between web servers (${[...sources].join(', ')}): give --release PATH`);
  const sourcePath = o.release ?? ([...sources][0] || EXAMPLE_APP);
  const buildCommand = same(hosts, vars, 'app_build_local', 'one build for all');
  // Built before any connection: a failed build touches no host.
  const release = buildCommand ? buildLocal(sourcePath, buildCommand) : localRelease(sourcePath);
  const source = localSource(release);
  return withFleet(o, true, async (fleet) => {
    const plan = planDeploy(await statesOf(fleet), release.id, batch);
    return roll(fleet, plan, o, source, `deploy ${source.label}`);
  });
}

/** `provision rollback`: every web server back one release, rolling the same way. */
export async function rollbackCommand(o: DeployOptions): Promise<number> {
  return withFleet(o, true, async (fleet) => {
    const batch = fleet.vars.values().next().value!.deploy_batch;
    let plan: DeployPlan;
    try {
      plan = planRollback(await statesOf(fleet), batch);
    } catch (err) {
      if (err instanceof NoPreviousRelease) {
        printErr(`provision: ${err.message}`);
        return EXIT.FAILED;
      }
      throw err;
    }
    return roll(fleet, plan, o, undefined, 'rollback');
  });
}

/** `provision releases`: what runs where, what is kept, where a rollback would go. */
export async function releasesCommand(o: CommonOptions): Promise<number> {
  return withFleet(o, false, async (fleet) => {
    const states = await statesOf(fleet);
    if (o.json) {
      printOut(JSON.stringify(Object.fromEntries(states.map(({ host, state }) => [host, { current: state.current ?? null, previous: previousRelease(state) ?? null, installed: state.installed }]))));
      return EXIT.OK;
    }
    for (const { host, state } of states) {
      const prev = previousRelease(state);
      printOut(`${host}: current ${state.current ?? '(none)'}${prev ? `, rollback to ${prev}` : ''}`);
      for (const r of [...state.installed].reverse()) {
        printOut(`  ${r.id === state.current ? '*' : ' '} ${r.id}  installed ${new Date(r.installedAt * 1000).toISOString()}`);
      }
    }
    return EXIT.OK;
  });
}
