import { ensureLabSecrets } from './secrets.ts';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { run, type RunResult } from './exec.ts';
import { LabError } from './errors.ts';
import { ensureDependencies } from './deps.ts';
import { ensureBaseImage } from './image.ts';
import {
  ACME_PORT, BASE_IMAGE, DEFAULT_INSTANCE, DEFAULT_SUBNET, PEBBLE_MGMT_PORT, PROXY_PORT, REFERENCE_HOSTS,
  buildLayout, hostDirs, instanceFiles, parseSubnet, selectHosts, validateInstanceName, type Layout,
} from './layout.ts';
import { machineMirrors, mirrorHosts } from './mirror.ts';
import {
  bridgeNetfilterEnabled, deleteLink, deleteNetns, ensureAttachedNetns, ensureBridge, ensureForwardRule,
  forwardRule, linkExists, linkIsUp, netnsConfigDir, netnsExists, removeForwardRule, setLink,
} from './network.ts';
import {
  bootHost, configureHost, hostAlive, hostCgroupDirs, knownHostsLines, mountOverlay, mountsUnder, removeHostCgroups, removeHostDirs,
  shutdownHost, sshArgs, unmount, waitForSsh,
} from './hosts.ts';
import { acmeAnswers, startChalltestsrv, startPebble, startProxy, tcpListening } from './services.ts';
import { isAlive, readState, stopProcess, writeState, type HostState, type LabState, type ProcRecord } from './state.ts';
import {
  createNetworks, ensureScaleSubnets, removeNetworks, removeScaleDirs, scaleDirs, scaleHostSpecs, scaleInventory, sshAnswers,
  startScaleHost, stopScaleHost, waitForScaleHost, writeSeed, type ScaleHostSpec,
} from './scale.ts';

export interface UpOptions {
  name?: string;
  subnet?: string;
  /** Extra generic hosts node-001.. (addresses .101+). */
  hosts?: number;
  /** Subset of the reference hosts (lb-01, web-01, web-02, mon-01). */
  only?: string[];
  /** Run Pebble (ACME CA) and its fake DNS; default true. */
  pebble?: boolean;
  /**
   * The last octet the fake DNS answers every name with (the site's address during http-01):
   * default lb-01's; a load-balancer pair's floating address (VIRTUAL_IP_OCTET) for the edge tests.
   */
  acmeOctet?: number;
  log?: (msg: string) => void;
  /** Bound for each host to answer SSH after boot. */
  sshTimeoutMs?: number;
  /**
   * Cheap scale hosts scale-001.. (sshd only, no systemd: see scale.ts), 200 per /24 at .11–.210.
   * Alone (without `only`/`hosts`), the instance gets no reference hosts and no Pebble.
   */
  scaleHosts?: number;
  /** More /24s for scale hosts beyond the instance's own subnet (hosts 201–400 in the first, …). */
  scaleSubnets?: string[];
}

export interface LabPaths {
  name: string;
  stateDir: string;
  stateFile: string;
  sshKey: string;
  sshPublicKey: string;
  knownHosts: string;
  subnet: string;
  gateway: string;
  bridge: string;
  clientAddress: string;
  clientNetns: string;
  proxyUrl: string;
  acmeDirectory: string;
  pebbleCa: string;
  pebbleManagement: string;
  /** Pebble makes a new root at each start; certificates it issues chain to this. */
  pebbleRootsUrl: string;
  baseImage: string;
  logDir: string;
  snapshotsDir: string;
}

export interface UpResult {
  name: string;
  alreadyUp: boolean;
  hosts: Record<string, string>;
  started: string[];
  imageBuilt: boolean;
  /** Whether Pebble (ACME) runs for this instance. */
  pebble: boolean;
  /** The cheap scale hosts, when the instance has any: how many, and an inventory of them. */
  scale?: { hosts: number; subnets: string[]; inventory: string };
  seconds: number;
  paths: LabPaths;
}

export interface HostStatus {
  name: string;
  address: string;
  running: boolean;
  pid?: number;
  link: boolean;
  ssh: boolean;
}

export interface LabStatus {
  name: string;
  up: boolean;
  subnet?: string;
  hosts: HostStatus[];
  services: { proxy: boolean; pebble?: boolean; challtestsrv?: boolean; acme?: boolean };
  /** Scale hosts: how many there are, how many run, how many answer SSH (identification string). */
  scale?: { hosts: number; running: number; answering: number };
}

const noLog = () => {};

export function assertSupported(): void {
  if (process.platform !== 'linux') throw new LabError('the lab needs Linux (network namespaces, overlayfs, systemd-nspawn)');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) throw new LabError('the lab needs root (run it as root)');
}

function instanceName(name?: string): string {
  return validateInstanceName(name ?? DEFAULT_INSTANCE);
}

function stateOf(name: string): LabState | undefined {
  return readState(instanceFiles(join('/var/lib/provision-lab', name)).stateFile);
}

function layoutFromState(state: LabState): Layout {
  return buildLayout(state.name, state.subnet, Object.values(state.hosts).map((h) => [h.name, Number(h.address.split('.')[3])]));
}

function subnetFor(name: string, state?: LabState): string {
  if (state) return state.subnet;
  if (name === DEFAULT_INSTANCE) return DEFAULT_SUBNET;
  throw new LabError(`instance "${name}" is not up and has no default subnet (pass --subnet)`);
}

export function labPaths(name?: string): LabPaths {
  const n = instanceName(name);
  const layout = buildLayout(n, subnetFor(n, stateOf(n)), []);
  const f = instanceFiles(layout.stateDir);
  return {
    name: n,
    stateDir: layout.stateDir,
    stateFile: f.stateFile,
    sshKey: f.sshKey,
    sshPublicKey: f.sshPublicKey,
    knownHosts: f.knownHosts,
    subnet: layout.subnet,
    gateway: layout.gateway,
    bridge: layout.bridge,
    clientAddress: layout.client.address,
    clientNetns: layout.client.netns,
    proxyUrl: `http://${layout.gateway}:${PROXY_PORT}`,
    acmeDirectory: `https://${layout.gateway}:${ACME_PORT}/dir`,
    pebbleCa: f.pebbleCa,
    pebbleManagement: `https://${layout.gateway}:${PEBBLE_MGMT_PORT}`,
    pebbleRootsUrl: `https://${layout.gateway}:${PEBBLE_MGMT_PORT}/roots/0`,
    baseImage: BASE_IMAGE,
    logDir: f.logDir,
    snapshotsDir: f.snapshotsDir,
  };
}

/** Host name → address of an instance that is up (the reference layout for `default` otherwise). */
export function labHosts(name?: string): Record<string, string> {
  const n = instanceName(name);
  const state = stateOf(n);
  if (state) return Object.fromEntries([...Object.values(state.hosts), ...Object.values(state.scale?.hosts ?? {})].map((h) => [h.name, h.address]));
  if (n === DEFAULT_INSTANCE) {
    return Object.fromEntries(buildLayout(n, DEFAULT_SUBNET, [...REFERENCE_HOSTS]).hosts.map((h) => [h.name, h.address]));
  }
  throw new LabError(`instance "${n}" is not up`);
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const errors: unknown[] = [];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      try {
        await fn(item);
      } catch (e) {
        errors.push(e);
      }
    }
  });
  await Promise.all(workers);
  if (errors.length) throw errors[0];
}

async function ensureSshKey(name: string): Promise<string> {
  const f = instanceFiles(join('/var/lib/provision-lab', name));
  mkdirSync(f.sshDir, { recursive: true, mode: 0o700 });
  if (!existsSync(f.sshKey)) {
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `provision-lab-${name}`, '-f', f.sshKey]);
  }
  return readFileSync(f.sshPublicKey, 'utf8');
}

function writeKnownHosts(layout: Layout, state: LabState): void {
  const f = instanceFiles(layout.stateDir);
  const lines = knownHostsLines([
    ...layout.hosts.map((h) => ({ name: h.name, address: h.address, root: hostDirs(layout.stateDir, h.name).merged })),
    // A scale host's key is in its seed, copied into its root at every start.
    ...Object.values(state.scale?.hosts ?? {}).map((h) => ({ name: h.name, address: h.address, root: scaleDirs(layout.stateDir, h.name).seed })),
  ]);
  writeFileSync(f.knownHosts, lines);
}

/** Boots one host whose netns exists: mount its overlay, configure it if fresh, start nspawn. */
async function bootOne(layout: Layout, state: LabState, hostName: string, publicKey: string): Promise<void> {
  const spec = layout.hosts.find((h) => h.name === hostName)!;
  const f = instanceFiles(layout.stateDir);
  const root = await mountOverlay(layout.stateDir, spec.name);
  await configureHost(layout, spec, root, publicKey);
  state.hosts[spec.name]!.nspawn = bootHost(spec, root, join(f.logDir, `${spec.name}.log`));
  writeState(f.stateFile, state);
}

async function waitHosts(layout: Layout, state: LabState, names: string[], timeoutMs: number): Promise<void> {
  const f = instanceFiles(layout.stateDir);
  await mapLimit(names, 16, (n) =>
    waitForSsh(state.hosts[n]!, f.sshKey, f.knownHosts, timeoutMs, () => hostAlive(state.hosts[n]!.nspawn)),
  );
}

/**
 * Starts the scale hosts the instance should have and does not run (new ones, and any that died).
 * Their number only grows, like the reference hosts'; their subnets may only be extended.
 */
async function upScaleHosts(layout: Layout, state: LabState, opts: UpOptions, publicKey: string): Promise<ScaleHostSpec[]> {
  if (opts.scaleHosts === undefined && !state.scale) return [];
  if (layout.hosts.some((h) => h.name.startsWith('node-'))) {
    throw new LabError(`instance "${layout.name}" has generic nodes (--hosts), whose addresses scale hosts would take: use another instance for scale hosts`);
  }
  const f = instanceFiles(layout.stateDir);
  const recorded = state.scale?.subnets ?? [layout.subnet];
  const extra = (opts.scaleSubnets ?? recorded.slice(1)).map((x) => parseSubnet(x).subnet);
  const subnets = [layout.subnet, ...extra];
  if (recorded.some((x, i) => subnets[i] !== x)) {
    throw new LabError(`instance "${layout.name}" has scale hosts on ${recorded.join(', ')}; --scale-subnets may only add to those (or run "lab down" first)`);
  }
  if (new Set(subnets).size !== subnets.length) throw new LabError(`--scale-subnets: ${subnets.join(', ')} names a subnet twice`);
  const count = Math.max(opts.scaleHosts ?? 0, Object.keys(state.scale?.hosts ?? {}).length);
  const specs = scaleHostSpecs(layout.name, subnets, count);
  state.scale = { subnets, hosts: Object.fromEntries(specs.map((s) => [s.name, { ...s, proc: state.scale?.hosts[s.name]?.proc }])) };
  writeState(f.stateFile, state); // recorded before anything exists, so `lab down` can clean up after a failed up
  await ensureScaleSubnets(layout.name, subnets);
  const toStart = specs.filter((s) => !isAlive(state.scale!.hosts[s.name]!.proc));
  await createNetworks(toStart, layout.bridge);
  try {
    for (const spec of toStart) {
      writeSeed(layout.stateDir, spec, publicKey);
      state.scale.hosts[spec.name]!.proc = startScaleHost(layout.stateDir, spec, join(f.logDir, `${spec.name}.log`));
    }
  } finally {
    writeState(f.stateFile, state);
  }
  return toStart;
}

/** Every started scale host answers SSH; the first and the last also take a real login (keys, known_hosts). */
async function waitScaleHosts(layout: Layout, state: LabState, started: ScaleHostSpec[], timeoutMs: number): Promise<void> {
  if (!started.length) return;
  const f = instanceFiles(layout.stateDir);
  await mapLimit(started, 32, (s) => waitForScaleHost(s, state.scale!.hosts[s.name]!.proc!, timeoutMs));
  for (const s of new Set([started[0]!, started[started.length - 1]!])) {
    await waitForSsh(s, f.sshKey, f.knownHosts, timeoutMs, () => isAlive(state.scale!.hosts[s.name]!.proc));
  }
}

function writeScaleInventory(layout: Layout, state: LabState): string {
  const f = instanceFiles(layout.stateDir);
  const file = join(layout.stateDir, 'scale-hosts.yml');
  writeFileSync(file, scaleInventory(Object.values(state.scale!.hosts), f, layout.gateway));
  return file;
}

export async function labUp(opts: UpOptions = {}): Promise<UpResult> {
  assertSupported();
  const started = Date.now();
  const log = opts.log ?? noLog;
  const name = instanceName(opts.name);
  const previous = stateOf(name);
  const subnet = opts.subnet ? parseSubnet(opts.subnet).subnet : subnetFor(name, previous);
  if (previous && previous.subnet !== subnet) {
    throw new LabError(`instance "${name}" is up with subnet ${previous.subnet}; run "provision lab down --name ${name}" first`);
  }
  // Hosts already in the instance stay; hosts asked for explicitly are added. A bare
  // `up` on a running instance keeps its host set rather than growing it to the default.
  const explicit = opts.only !== undefined || opts.hosts !== undefined;
  const scaleOnly = opts.scaleHosts !== undefined && !explicit;
  const wanted = (previous && !explicit) || scaleOnly ? [] : selectHosts({ only: opts.only, nodes: opts.hosts });
  const have = previous ? Object.values(previous.hosts).map((h) => [h.name, Number(h.address.split('.')[3])] as [string, number]) : [];
  const all = [...have, ...wanted.filter(([n]) => !have.some(([h]) => h === n))].sort((a, b) => a[1] - b[1]);
  const layout = buildLayout(name, subnet, all);
  const f = instanceFiles(layout.stateDir);
  const pebble = opts.pebble ?? previous?.pebble ?? !scaleOnly;

  await ensureDependencies(log);
  const mirrors = machineMirrors();
  if (!mirrors.security) log("note: no Debian security archive in the machine's apt sources, nor beside its mirror: the hosts get no bookworm-security suite");
  const image = await ensureBaseImage(mirrors, log);
  if (image.built) log(`base image built in ${image.seconds.toFixed(0)} s`);
  for (const d of [f.logDir, f.hostsDir]) mkdirSync(d, { recursive: true });
  const publicKey = await ensureSshKey(name);

  const state: LabState = previous ?? {
    version: 1, name, subnet, gateway: layout.gateway, bridge: layout.bridge, hosts: {}, services: {}, pebble,
  };
  state.pebble = pebble;
  state.startedAt ??= new Date().toISOString();
  for (const h of layout.hosts) {
    state.hosts[h.name] ??= { name: h.name, address: h.address, netns: h.netns, veth: h.veth, machine: h.machine, root: hostDirs(layout.stateDir, h.name).merged };
  }
  state.client = { ...layout.client };
  // Recorded before anything is created, so `lab down` can clean up after a failed up.
  writeState(f.stateFile, state);

  await ensureBridge(layout);
  state.forwardRule = forwardRule(layout);
  writeState(f.stateFile, state);
  await ensureForwardRule(state.forwardRule);
  if (!bridgeNetfilterEnabled()) log('note: bridge netfilter is off; lab bridge traffic is unfiltered by the machine');
  await ensureAttachedNetns(layout, layout.client.netns, layout.client.veth, layout.client.address);

  const startedNow: string[] = [];
  if (!isAlive(state.services.tinyproxy)) {
    await startProxy(layout, mirrorHosts(mirrors), (rec) => {
      state.services.tinyproxy = rec;
      writeState(f.stateFile, state);
    });
    startedNow.push('proxy');
  }
  if (pebble) {
    const lb = `${layout.prefix}.${opts.acmeOctet ?? REFERENCE_HOSTS.find(([n]) => n === 'lb-01')![1]}`;
    if (!isAlive(state.services.challtestsrv)) {
      await startChalltestsrv(layout, lb, (rec) => {
        state.services.challtestsrv = rec;
        writeState(f.stateFile, state);
      });
      startedNow.push('challtestsrv');
    }
    if (!isAlive(state.services.pebble)) {
      await startPebble(layout, (rec) => {
        state.services.pebble = rec;
        writeState(f.stateFile, state);
      });
      startedNow.push('pebble');
    }
  }

  const toBoot = layout.hosts.filter((h) => !hostAlive(state.hosts[h.name]!.nspawn)).map((h) => h.name);
  await mapLimit(layout.hosts, 8, (h) => ensureAttachedNetns(layout, h.netns, h.veth, h.address));
  await mapLimit(toBoot, 8, (n) => bootOne(layout, state, n, publicKey));
  const scaleStarted = await upScaleHosts(layout, state, opts, publicKey);
  writeKnownHosts(layout, state);
  await waitHosts(layout, state, layout.hosts.map((h) => h.name), opts.sshTimeoutMs ?? 120_000);
  await waitScaleHosts(layout, state, scaleStarted, opts.sshTimeoutMs ?? 120_000);
  startedNow.push(...toBoot, ...(scaleStarted.length ? [`${scaleStarted.length} scale hosts`] : []));
  if (name === 'default') ensureLabSecrets();
  const scale = state.scale && {
    hosts: Object.keys(state.scale.hosts).length,
    subnets: state.scale.subnets,
    inventory: writeScaleInventory(layout, state),
  };

  return {
    name,
    alreadyUp: previous !== undefined && startedNow.length === 0,
    hosts: Object.fromEntries(layout.hosts.map((h) => [h.name, h.address])),
    started: startedNow,
    imageBuilt: image.built,
    pebble,
    ...(scale ? { scale } : {}),
    seconds: (Date.now() - started) / 1000,
    paths: labPaths(name),
  };
}

export interface DownResult {
  name: string;
  wasUp: boolean;
  seconds: number;
}

/** Stops everything recorded in state.json, by pid, and removes every link, netns and mount of the instance. */
export async function labDown(name?: string, log: (msg: string) => void = noLog): Promise<DownResult> {
  assertSupported();
  const started = Date.now();
  const n = instanceName(name);
  const stateDir = join('/var/lib/provision-lab', n);
  const f = instanceFiles(stateDir);
  const state = readState(f.stateFile);
  if (!state) return { name: n, wasUp: false, seconds: 0 };

  const hosts = Object.values(state.hosts);
  await mapLimit(hosts, 16, async (h) => {
    await shutdownHost(h.nspawn);
    if (isAlive(h.nspawn)) throw new LabError(`${h.name}: nspawn pid ${h.nspawn!.pid} would not stop`);
    delete h.nspawn;
    removeHostCgroups(h.machine);
    await unmount(h.root);
    await deleteLink(h.veth);
    await deleteNetns(h.netns);
  });
  if (state.scale) {
    const scaleHosts = Object.values(state.scale.hosts);
    await mapLimit(scaleHosts, 32, async (h) => {
      await stopScaleHost(h.proc);
      if (isAlive(h.proc)) throw new LabError(`${h.name}: pid ${h.proc!.pid} would not stop`);
      delete h.proc;
    });
    await removeNetworks(scaleHosts);
  }
  writeState(f.stateFile, state);
  for (const key of ['pebble', 'challtestsrv', 'tinyproxy'] as const) {
    await stopProcess(state.services[key], 10_000);
    if (isAlive(state.services[key])) throw new LabError(`${key} pid ${state.services[key]!.pid} would not stop`);
    delete state.services[key];
  }
  writeState(f.stateFile, state);
  if (state.client) {
    await deleteLink(state.client.veth);
    await deleteNetns(state.client.netns);
  }
  if (state.forwardRule) await removeForwardRule(state.forwardRule);
  await deleteLink(state.bridge);
  for (const m of mountsUnder(stateDir)) await unmount(m);
  for (const h of hosts) removeHostDirs(stateDir, h.name);
  removeScaleDirs(stateDir);
  rmSync(f.stateFile, { force: true });
  log(`lab "${n}" is down`);
  return { name: n, wasUp: true, seconds: (Date.now() - started) / 1000 };
}

function sshPortOpen(address: string): Promise<boolean> {
  return tcpListening(address, 22);
}

export async function labStatus(name?: string): Promise<LabStatus> {
  assertSupported();
  const n = instanceName(name);
  const state = stateOf(n);
  if (!state) return { name: n, up: false, hosts: [], services: { proxy: false } };
  const f = instanceFiles(join('/var/lib/provision-lab', n));
  const hosts: HostStatus[] = [];
  await mapLimit(Object.values(state.hosts), 16, async (h) => {
    const running = hostAlive(h.nspawn);
    const link = await linkIsUp(h.veth);
    let ssh = false;
    if (running && link && (await sshPortOpen(h.address))) {
      ssh = (await run('ssh', sshArgs(f.sshKey, f.knownHosts, h.address, ['true']), { allowFail: true, timeoutMs: 10_000 })).code === 0;
    }
    hosts.push({ name: h.name, address: h.address, running, pid: running ? h.nspawn!.pid : undefined, link, ssh });
  });
  hosts.sort((a, b) => Number(a.address.split('.')[3]) - Number(b.address.split('.')[3]));
  const layout = layoutFromState(state);
  let scale: LabStatus['scale'];
  if (state.scale) {
    const all = Object.values(state.scale.hosts);
    const running = all.filter((h) => isAlive(h.proc));
    let answering = 0;
    await mapLimit(running, 32, async (h) => {
      if (await sshAnswers(h.address, 5000)) answering++;
    });
    scale = { hosts: all.length, running: running.length, answering };
  }
  return {
    name: n,
    up: true,
    subnet: state.subnet,
    hosts,
    services: {
      proxy: isAlive(state.services.tinyproxy),
      ...(state.pebble
        ? { pebble: isAlive(state.services.pebble), challtestsrv: isAlive(state.services.challtestsrv), acme: await acmeAnswers(layout) }
        : {}),
    },
    ...(scale ? { scale } : {}),
  };
}

function requireHost(name: string | undefined, host: string): { layout: Layout; state: LabState; h: HostState } {
  const n = instanceName(name);
  const state = stateOf(n);
  if (!state) throw new LabError(`lab "${n}" is not up`);
  const h = state.hosts[host];
  if (!h) throw new LabError(`no host "${host}" in lab "${n}" (hosts: ${Object.keys(state.hosts).join(', ')})`);
  return { layout: layoutFromState(state), state, h };
}

async function stopOne(layout: Layout, state: LabState, h: HostState): Promise<void> {
  await shutdownHost(h.nspawn);
  if (isAlive(h.nspawn)) throw new LabError(`${h.name}: nspawn pid ${h.nspawn!.pid} would not stop`);
  delete h.nspawn;
  writeState(instanceFiles(layout.stateDir).stateFile, state);
  await unmount(h.root);
}

async function startOne(layout: Layout, state: LabState, h: HostState, timeoutMs = 120_000): Promise<void> {
  if (hostAlive(h.nspawn)) return;
  const spec = layout.hosts.find((x) => x.name === h.name)!;
  await ensureAttachedNetns(layout, spec.netns, spec.veth, spec.address);
  await bootOne(layout, state, h.name, await ensureSshKey(layout.name));
  writeKnownHosts(layout, state);
  await waitHosts(layout, state, [h.name], timeoutMs);
}

export async function stopHost(host: string, name?: string): Promise<void> {
  assertSupported();
  const { layout, state, h } = requireHost(name, host);
  await stopOne(layout, state, h);
}

export async function startHost(host: string, name?: string): Promise<void> {
  assertSupported();
  const { layout, state, h } = requireHost(name, host);
  await startOne(layout, state, h);
}

function validSnapshotName(snap: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(snap)) throw new LabError(`invalid snapshot name "${snap}"`);
  return snap;
}

/** Copies the host's overlay upper dir (its whole difference from the base image) while it is stopped. */
export async function snapshotHost(host: string, snap: string, name?: string): Promise<string> {
  assertSupported();
  validSnapshotName(snap);
  const { layout, state, h } = requireHost(name, host);
  const dirs = hostDirs(layout.stateDir, host);
  const target = join(instanceFiles(layout.stateDir).snapshotsDir, snap, host);
  const wasRunning = hostAlive(h.nspawn);
  await stopOne(layout, state, h);
  rmSync(target, { recursive: true, force: true });
  mkdirSync(join(target, '..'), { recursive: true });
  await run('cp', ['-a', dirs.upper, target]);
  if (wasRunning) await startOne(layout, state, h);
  return target;
}

export async function restoreHost(host: string, snap: string, name?: string): Promise<void> {
  assertSupported();
  validSnapshotName(snap);
  const { layout, state, h } = requireHost(name, host);
  const dirs = hostDirs(layout.stateDir, host);
  const source = join(instanceFiles(layout.stateDir).snapshotsDir, snap, host);
  if (!existsSync(source)) throw new LabError(`no snapshot "${snap}" of ${host}`);
  await stopOne(layout, state, h);
  rmSync(dirs.upper, { recursive: true, force: true });
  rmSync(dirs.work, { recursive: true, force: true });
  await run('cp', ['-a', source, dirs.upper]);
  await startOne(layout, state, h);
}

export async function linkDown(host: string, name?: string): Promise<void> {
  assertSupported();
  const { h } = requireHost(name, host);
  await setLink(h.veth, false);
}

export async function linkUp(host: string, name?: string): Promise<void> {
  assertSupported();
  const { h } = requireHost(name, host);
  await setLink(h.veth, true);
}

/** Runs a command in the lab's client namespace: "the internet" as seen by the hosts. */
export async function inClient(cmd: string[], name?: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  assertSupported();
  const n = instanceName(name);
  const state = stateOf(n);
  if (!state?.client || !(await netnsExists(state.client.netns))) throw new LabError(`lab "${n}" is not up (no client namespace)`);
  return run('ip', ['netns', 'exec', state.client.netns, ...cmd], { allowFail: true, timeoutMs: opts.timeoutMs });
}

/** Runs a command on a host over SSH with the lab key (output captured). */
export async function hostExec(host: string, cmd: string[], name?: string, opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  assertSupported();
  const { address, files } = sshTarget(name, host);
  return run('ssh', sshArgs(files.sshKey, files.knownHosts, address, cmd), { allowFail: true, timeoutMs: opts.timeoutMs });
}

/** Any host of the instance, a reference or node host or a scale host: its address and the lab's SSH files. */
function sshTarget(name: string | undefined, host: string): { address: string; files: ReturnType<typeof instanceFiles> } {
  const n = instanceName(name);
  const state = stateOf(n);
  const scale = state?.scale?.hosts[host];
  if (scale) return { address: scale.address, files: instanceFiles(join('/var/lib/provision-lab', n)) };
  const { h, layout } = requireHost(name, host);
  return { address: h.address, files: instanceFiles(layout.stateDir) };
}

/** Same as hostExec with the terminal attached (for the CLI); resolves to the remote exit code. */
export async function hostExecInteractive(host: string, cmd: string[], name?: string): Promise<number> {
  assertSupported();
  const { address, files } = sshTarget(name, host);
  return new Promise((resolve) => {
    const child = spawn('ssh', sshArgs(files.sshKey, files.knownHosts, address, cmd), { stdio: 'inherit' });
    child.on('error', () => resolve(255));
    child.on('exit', (code) => resolve(code ?? 255));
  });
}

/** What of an instance still exists on the machine (the test's "nothing left behind" check). */
export async function leftovers(name?: string, recorded?: LabState): Promise<string[]> {
  const n = instanceName(name);
  const stateDir = join('/var/lib/provision-lab', n);
  const out: string[] = [];
  const state = recorded ?? stateOf(n);
  if (state) {
    for (const h of Object.values(state.hosts)) {
      if (isAlive(h.nspawn)) out.push(`process ${h.nspawn!.pid} (${h.name})`);
      if (await linkExists(h.veth)) out.push(`link ${h.veth}`);
      if (await netnsExists(h.netns)) out.push(`netns ${h.netns}`);
      if (existsSync(netnsConfigDir(h.netns))) out.push(`dir ${netnsConfigDir(h.netns)}`);
      for (const dir of hostCgroupDirs(h.machine)) if (existsSync(dir)) out.push(`cgroup ${dir}`);
    }
    for (const [k, rec] of Object.entries(state.services) as Array<[string, ProcRecord | undefined]>) {
      if (isAlive(rec)) out.push(`process ${rec!.pid} (${k})`);
    }
    for (const h of Object.values(state.scale?.hosts ?? {})) {
      if (isAlive(h.proc)) out.push(`process ${h.proc!.pid} (${h.name})`);
      if (await linkExists(h.veth)) out.push(`link ${h.veth}`);
      if (await netnsExists(h.netns)) out.push(`netns ${h.netns}`);
    }
    if (state.client && (await netnsExists(state.client.netns))) out.push(`netns ${state.client.netns}`);
    if (state.client && existsSync(netnsConfigDir(state.client.netns))) out.push(`dir ${netnsConfigDir(state.client.netns)}`);
    if (state.client && (await linkExists(state.client.veth))) out.push(`link ${state.client.veth}`);
    if (await linkExists(state.bridge)) out.push(`bridge ${state.bridge}`);
  }
  for (const m of mountsUnder(stateDir)) out.push(`mount ${m}`);
  return out;
}
