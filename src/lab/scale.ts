/**
 * Cheap hosts for scale: sshd alone, no systemd boot. Each host is a network namespace on the lab's
 * bridge and one sshd running as pid 1 of its own pid, mount and UTS namespaces, chrooted into the
 * shared base image: the image read-only below an overlay whose upper layer is a small tmpfs (host
 * keys, authorized_keys, and whatever a run writes). A host costs the machine one sshd listener and
 * one waiting `unshare` (about 1.5 MB of private memory together), so hundreds fit on a small machine.
 *
 * What such a host can converge: files, templates, lines in files, users and groups, commands. What it
 * cannot: apt (nothing reaches a mirror) and services (no systemd). Its files live in memory: a stopped
 * host starts fresh. `lab down` stops it by pid (killing the pid namespace's init ends every session).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ed25519KeyPair } from '../util/ssh-keys.js';
import { run, spawnDetached, sleep } from './exec.ts';
import { LabError } from './errors.ts';
import { BASE_IMAGE, bridgeName, parseSubnet, validateInstanceName } from './layout.ts';
import { childPids, isAlive, isStarting, type ProcRecord } from './state.ts';

/**
 * Scale hosts per /24: octets .21–.220. The gateway (.1), the reference hosts (.10–.20) and the client
 * (.250) stay clear; the generic nodes (.101–.199) do not, so an instance has nodes or scale hosts.
 */
export const SCALE_HOSTS_PER_SUBNET = 200;
const FIRST_OCTET = 21;
export const MAX_SCALE_HOSTS = 999;

export interface ScaleHostSpec {
  name: string;
  index: number;
  address: string;
  gateway: string;
  netns: string;
  /** Bridge-side end of the host's veth pair (inside it is eth0). */
  veth: string;
}

export interface ScaleHostState extends ScaleHostSpec {
  /** The `unshare` that holds the host's namespaces; its child is the host's sshd (pid 1 inside). */
  proc?: ProcRecord;
}

export interface ScaleState {
  /** The /24s the scale hosts are numbered over, the instance's own first. */
  subnets: string[];
  hosts: Record<string, ScaleHostState>;
}

export function scaleHostName(i: number): string {
  return `scale-${String(i).padStart(3, '0')}`;
}

function tag(instance: string, text: string): string {
  let h = 0;
  for (const c of `${instance}/${text}`) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h.toString(36).slice(0, 4).padStart(4, '0');
}

/**
 * Host i (1-based) of `count`: the first SCALE_HOSTS_PER_SUBNET in the first subnet, the next in the
 * second, and so on. Interface names stay within 15 characters (`vps` + instance tag + index).
 */
export function scaleHostSpecs(instance: string, subnets: string[], count: number): ScaleHostSpec[] {
  validateInstanceName(instance);
  if (!Number.isInteger(count) || count < 0 || count > MAX_SCALE_HOSTS) throw new LabError(`--scale-hosts must be an integer from 0 to ${MAX_SCALE_HOSTS}`);
  const needed = Math.ceil(count / SCALE_HOSTS_PER_SUBNET);
  if (needed > subnets.length) {
    throw new LabError(
      `${count} scale hosts need ${needed} /24 subnets (${SCALE_HOSTS_PER_SUBNET} hosts each), ${subnets.length} given: add --scale-subnets A.B.C.0/24[,…]`,
    );
  }
  const prefixes = subnets.map((s) => parseSubnet(s).prefix);
  const t = tag(instance, 'scale');
  return Array.from({ length: count }, (_, k) => {
    const i = k + 1;
    const prefix = prefixes[Math.floor(k / SCALE_HOSTS_PER_SUBNET)]!;
    return {
      name: scaleHostName(i),
      index: i,
      address: `${prefix}.${FIRST_OCTET + (k % SCALE_HOSTS_PER_SUBNET)}`,
      gateway: `${prefix}.1`,
      netns: `provlab-${instance}-${scaleHostName(i)}`,
      veth: `vps${t}-${i}`,
    };
  });
}

export function scaleDirs(stateDir: string, host: string) {
  const base = join(stateDir, 'scale', host);
  /** What the host's overlay starts from: its host key, the lab's authorized key, sshd's drop-in. */
  return { base, seed: join(base, 'seed'), mount: join(base, 'mnt') };
}

export const bootScriptPath = (stateDir: string) => join(stateDir, 'scale', 'boot.sh');

/**
 * Runs inside the host's network namespace as pid 1 of new pid, mount and UTS namespaces: every
 * mount below is private to the host and goes away with it. /dev is a handful of nodes, not the
 * machine's; /run is a tmpfs of its own (sshd's privilege separation directory and pid file).
 */
const BOOT_SCRIPT = `#!/bin/sh
# provision lab: one cheap scale host (src/lab/scale.ts). Arguments: MOUNT BASE SEED NAME ADDRESS GATEWAY
set -eu
mnt=$1 base=$2 seed=$3 name=$4 address=$5 gateway=$6
ip -batch - <<EOF
link set lo up
addr replace $address/24 dev eth0
link set eth0 up
route replace default via $gateway
EOF
hostname "$name"
mount -t tmpfs -o size=64m,mode=0755 provision-scale "$mnt"
mkdir "$mnt/upper" "$mnt/work" "$mnt/root"
cp -a "$seed/." "$mnt/upper/"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$mnt/upper,workdir=$mnt/work" "$mnt/root"
r=$mnt/root
mount -t proc proc "$r/proc"
mount -t tmpfs -o size=1m,mode=0755 dev "$r/dev"
mknod -m 666 "$r/dev/null" c 1 3; mknod -m 666 "$r/dev/zero" c 1 5; mknod -m 666 "$r/dev/full" c 1 7
mknod -m 666 "$r/dev/random" c 1 8; mknod -m 666 "$r/dev/urandom" c 1 9; mknod -m 666 "$r/dev/tty" c 5 0
ln -s /proc/self/fd "$r/dev/fd"; ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o size=8m,mode=0755 run "$r/run"
mkdir -m 0755 "$r/run/sshd"
exec chroot "$r" /usr/sbin/sshd -D -e
`;

/** The host's own files, copied into its overlay at every start: a new host key, the lab's key for root. */
export function writeSeed(stateDir: string, spec: ScaleHostSpec, publicKey: string): void {
  const d = scaleDirs(stateDir, spec.name);
  if (existsSync(join(d.seed, 'etc/ssh/ssh_host_ed25519_key'))) return; // keep its identity across restarts
  mkdirSync(join(d.seed, 'etc/ssh/sshd_config.d'), { recursive: true, mode: 0o755 });
  mkdirSync(join(d.seed, 'root/.ssh'), { recursive: true, mode: 0o700 });
  chmodSync(join(d.seed, 'root'), 0o700);
  chmodSync(join(d.seed, 'root/.ssh'), 0o700);
  mkdirSync(d.mount, { recursive: true });
  // In-process (no ssh-keygen per host): a fleet of hundreds starts in seconds.
  const key = ed25519KeyPair({ comment: `root@${spec.name}` });
  writeFileSync(join(d.seed, 'etc/ssh/ssh_host_ed25519_key'), key.private, { mode: 0o600 });
  writeFileSync(join(d.seed, 'etc/ssh/ssh_host_ed25519_key.pub'), key.public.trim() + '\n', { mode: 0o644 });
  writeFileSync(join(d.seed, 'etc/hostname'), spec.name + '\n');
  writeFileSync(join(d.seed, 'root/.ssh/authorized_keys'), publicKey.trim() + '\n', { mode: 0o600 });
  writeFileSync(
    join(d.seed, 'etc/ssh/sshd_config.d/00-provision-lab.conf'),
    '# provision lab (scale host): root logs in with the lab key only; one host key\n' +
      'HostKey /etc/ssh/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n',
  );
}

/** Namespaces and veth pairs of the hosts that lack them, in one `ip` process. */
export async function createNetworks(specs: ScaleHostSpec[], bridge: string): Promise<void> {
  const lines: string[] = [];
  for (const s of specs) {
    if (!existsSync(`/run/netns/${s.netns}`)) lines.push(`netns add ${s.netns}`);
    if (!existsSync(`/sys/class/net/${s.veth}`)) lines.push(`link add ${s.veth} type veth peer name eth0 netns ${s.netns}`);
    lines.push(`link set ${s.veth} master ${bridge} up`);
  }
  if (lines.length) await run('ip', ['-batch', '-'], { input: lines.join('\n') + '\n' });
}

/** Removes the hosts' veth pairs and namespaces (what exists), in one `ip` process. */
export async function removeNetworks(specs: ScaleHostSpec[]): Promise<void> {
  const lines: string[] = [];
  for (const s of specs) {
    if (existsSync(`/sys/class/net/${s.veth}`)) lines.push(`link del ${s.veth}`);
    if (existsSync(`/run/netns/${s.netns}`)) lines.push(`netns del ${s.netns}`);
  }
  // -force: one that vanished meanwhile must not stop the others' removal.
  if (lines.length) await run('ip', ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFail: true });
}

export function startScaleHost(stateDir: string, spec: ScaleHostSpec, logFile: string): ProcRecord {
  const d = scaleDirs(stateDir, spec.name);
  const script = bootScriptPath(stateDir);
  if (!existsSync(script) || readFileSync(script, 'utf8') !== BOOT_SCRIPT) {
    mkdirSync(join(stateDir, 'scale'), { recursive: true });
    writeFileSync(script, BOOT_SCRIPT, { mode: 0o755 });
  }
  const pid = spawnDetached('ip', [
    'netns', 'exec', spec.netns,
    'unshare', '--mount', '--pid', '--uts', '--fork', '--kill-child', '--',
    '/bin/sh', script, d.mount, BASE_IMAGE, d.seed, spec.name, spec.address, spec.gateway,
  ], logFile);
  // `ip netns exec` becomes unshare (same pid); the seed path names this host and instance.
  return { pid, exe: 'unshare', marker: d.seed };
}

/**
 * sshd (pid 1 of the host's pid namespace) stops on SIGTERM and the kernel then ends every session;
 * `unshare` blocks SIGTERM and exits with its child. SIGKILL to `unshare` is the hard way (its
 * --kill-child takes the host with it).
 */
export async function stopScaleHost(rec: ProcRecord | undefined, graceMs = 5000): Promise<void> {
  if (!rec || !isAlive(rec)) return;
  for (const pid of childPids(rec.pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const end = Date.now() + graceMs;
  while (isAlive(rec) && Date.now() < end) await sleep(50);
  if (!isAlive(rec)) return;
  try {
    process.kill(rec.pid, 'SIGKILL');
  } catch {
    return;
  }
  const hard = Date.now() + 5000;
  while (isAlive(rec) && Date.now() < hard) await sleep(50);
}

/** True once the host's sshd answers with its identification string. */
export function sshAnswers(address: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: address, port: 22 });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('SSH-2.0-'));
    });
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}

export async function waitForScaleHost(spec: ScaleHostSpec, rec: ProcRecord, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (!isStarting(rec)) throw new LabError(`${spec.name}: its sshd exited during start; see its log`);
    if (await sshAnswers(spec.address, 2000)) return;
    await sleep(200);
  }
  throw new LabError(`${spec.name} (${spec.address}) did not answer SSH within ${Math.round(timeoutMs / 1000)} s`);
}

/** An inventory of the scale hosts, for `provision --inventory PATH` and the benchmark. */
export function scaleInventory(hosts: ScaleHostSpec[], files: { sshKey: string; knownHosts: string }, gateway: string): string {
  const lines = [
    '# Written by `provision lab up --scale-hosts N`: the cheap scale hosts of this lab instance (sshd only;',
    '# files, templates, lines, users and commands converge; apt and services do not).',
    'defaults:',
    '  user: root',
    `  identity_file: ${files.sshKey}`,
    `  known_hosts: ${files.knownHosts}`,
    '  connect_timeout: 30',
    '',
    'hosts:',
    ...hosts.flatMap((h) => [`  ${h.name}:`, `    address: ${h.address}`]),
    '',
    'vars:',
    `  admin_cidrs: [${gateway}/32]`,
    '',
  ];
  return lines.join('\n');
}

/** The bridge carries every subnet the scale hosts use: the machine is the gateway of each. */
export async function ensureScaleSubnets(instance: string, subnets: string[]): Promise<void> {
  const bridge = bridgeName(instance);
  for (const s of subnets) {
    const { prefix, subnet } = parseSubnet(s);
    // Refuse a subnet the machine already routes elsewhere (another instance, a real network).
    const routes = (await run('ip', ['-o', 'route', 'show', 'exact', subnet], { allowFail: true })).stdout.trim();
    if (routes && !routes.split('\n').every((l) => l.includes(` dev ${bridge} `))) {
      throw new LabError(`subnet ${subnet} is already in use on this machine (${routes.split('\n')[0]}); choose another with --scale-subnets`);
    }
    await run('ip', ['addr', 'replace', `${prefix}.1/24`, 'dev', bridge]);
  }
}

export function removeScaleDirs(stateDir: string): void {
  rmSync(join(stateDir, 'scale'), { recursive: true, force: true });
}
