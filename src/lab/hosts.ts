import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run, spawnDetached, sleep } from './exec.ts';
import { LabError } from './errors.ts';
import { BASE_IMAGE, PROXY_PORT, hostDirs, type HostSpec, type Layout } from './layout.ts';
import { childPids, isAlive, stopProcess, type ProcRecord } from './state.ts';

export function isMounted(path: string): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === path);
}

/** Mount points under a directory, deepest first (for `lab down` and its leftovers check). */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((p) => p === dir || p.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
}

/** The host's root: the shared base image below, this host's own changes in `upper`. */
export async function mountOverlay(stateDir: string, host: string): Promise<string> {
  const d = hostDirs(stateDir, host);
  for (const p of [d.upper, d.work, d.merged]) mkdirSync(p, { recursive: true });
  if (!isMounted(d.merged)) {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${BASE_IMAGE},upperdir=${d.upper},workdir=${d.work}`, d.merged]);
  }
  return d.merged;
}

export async function unmount(path: string): Promise<void> {
  if (!isMounted(path)) return;
  const res = await run('umount', [path], { allowFail: true });
  // A lingering reference (a shell cd'ed into it) must not leave the lab half torn down.
  if (res.code !== 0) await run('umount', ['-l', path]);
}

export function hostsFile(layout: Layout): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost ip6-loopback', `${layout.gateway} gateway controller`];
  for (const h of layout.hosts) lines.push(`${h.address} ${h.name}`);
  return lines.join('\n') + '\n';
}

/**
 * Gives a fresh host its identity (own ssh host keys and machine-id), lab access
 * (root key login only) and the apt proxy. Runs once per overlay: a host whose
 * upper dir already carries keys (running, stopped or restored) is left as it is.
 */
export async function configureHost(layout: Layout, host: HostSpec, root: string, publicKey: string): Promise<boolean> {
  if (existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key'))) return false;
  await run('ssh-keygen', ['-A', '-f', root]);
  writeFileSync(join(root, 'etc/machine-id'), randomBytes(16).toString('hex') + '\n');
  writeFileSync(join(root, 'etc/hostname'), host.name + '\n');
  writeFileSync(join(root, 'etc/hosts'), hostsFile(layout));
  const sshDir = join(root, 'root/.ssh');
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  chmodSync(sshDir, 0o700);
  writeFileSync(join(sshDir, 'authorized_keys'), publicKey.trim() + '\n', { mode: 0o600 });
  writeFileSync(
    join(root, 'etc/ssh/sshd_config.d/00-provision-lab.conf'),
    '# provision lab: root logs in with the lab key only\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n',
  );
  // A test host runs no background apt: Debian's timers (06:00 and 18:00, up to 12 h of random delay)
  // would take the dpkg lock in the middle of a test. The timers stay on (the common role checks
  // that), due once a year instead; the site's own apt tasks run apt themselves.
  for (const timer of ['apt-daily.timer', 'apt-daily-upgrade.timer']) {
    mkdirSync(join(root, `etc/systemd/system/${timer}.d`), { recursive: true });
    writeFileSync(
      join(root, `etc/systemd/system/${timer}.d/00-provision-lab.conf`),
      '# provision lab: no background apt during tests (see src/lab/hosts.ts)\n[Timer]\nOnCalendar=\nOnCalendar=*-12-31 03:00:00\nRandomizedDelaySec=0\nPersistent=false\n',
    );
  }
  // Nor the daily scans the common role installs (AIDE's check, chkrootkit 30 min after boot): each
  // reads the whole disk for a minute of CPU, on a machine the tests share. Same treatment.
  for (const timer of ['dailyaidecheck.timer', 'chkrootkit.timer']) {
    mkdirSync(join(root, `etc/systemd/system/${timer}.d`), { recursive: true });
    writeFileSync(
      join(root, `etc/systemd/system/${timer}.d/00-provision-lab.conf`),
      '# provision lab: no background scans during tests (see src/lab/hosts.ts)\n[Timer]\nOnCalendar=\nOnBootSec=\nOnUnitActiveSec=\nOnCalendar=*-12-31 03:00:00\nRandomizedDelaySec=0\nPersistent=false\n',
    );
  }
  writeFileSync(
    join(root, 'etc/apt/apt.conf.d/01provision-lab-proxy'),
    `Acquire::http::Proxy "http://${layout.gateway}:${PROXY_PORT}";\nAcquire::https::Proxy "http://${layout.gateway}:${PROXY_PORT}";\n`,
  );
  return true;
}

/** `ADDRESS keytype key` and `NAME keytype key` lines for every host key of every host. */
export function knownHostsLines(hosts: Array<{ name: string; address: string; root: string }>): string {
  const out: string[] = [];
  for (const h of hosts) {
    const sshDir = join(h.root, 'etc/ssh');
    if (!existsSync(sshDir)) continue;
    for (const f of readdirSync(sshDir).filter((f) => /^ssh_host_.*_key\.pub$/.test(f)).sort()) {
      const [type, key] = readFileSync(join(sshDir, f), 'utf8').trim().split(/\s+/);
      if (!type || !key) continue;
      out.push(`${h.address} ${type} ${key}`, `${h.name} ${type} ${key}`);
    }
  }
  return out.join('\n') + '\n';
}

/**
 * The cgroup hierarchies systemd-nspawn places a container in, each with where this process sits in
 * it: the named `systemd` one (legacy and hybrid layouts) and the unified one (`0::`, at
 * /sys/fs/cgroup on a unified machine, /sys/fs/cgroup/unified on a hybrid one).
 */
function nspawnHierarchies(): { mount: string; own: string }[] {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return [];
  }
  const out: { mount: string; own: string }[] = [];
  for (const line of lines) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, id, controllers, own] = m as unknown as [string, string, string, string];
    if (controllers === 'name=systemd') out.push({ mount: '/sys/fs/cgroup/systemd', own });
    else if (id === '0' && controllers === '') {
      out.push({ mount: existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified', own });
    }
  }
  return out.filter((h) => existsSync(join(h.mount, 'cgroup.procs')));
}

/** A host's own cgroup in each of those hierarchies (made by `bootHost`, removed by `removeHostCgroups`). */
export function hostCgroupDirs(machine: string): string[] {
  return nspawnHierarchies().map((h) => join(h.mount, 'provision-lab', machine));
}

/**
 * Runs `start` (which spawns nspawn) with this process moved for that moment into the host's own
 * cgroup, so that nspawn — which, not registered with a machine manager (`--register=no
 * --keep-unit`: the machine has no systemd), puts its container under the cgroup it starts in —
 * gives each host a cgroup tree of its own. Started from one shared cgroup, every host's services
 * were one cgroup per unit name for all hosts (`/payload/system.slice/nginx.service` for both web
 * servers): a restart on one host then failed at random in systemd's cgroup kill and attach
 * ("Failed to kill control group … Input/output error", status=219/CGROUP). The move is synchronous
 * around a synchronous spawn: nothing else of this process runs in between.
 */
function inHostCgroup<T>(machine: string, start: () => T): T {
  const moved: { own: string; mount: string }[] = [];
  try {
    for (const h of nspawnHierarchies()) {
      const dir = join(h.mount, 'provision-lab', machine);
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
        moved.push(h);
      } catch (e) {
        throw new LabError(`${machine}: cannot give the host a cgroup of its own in ${h.mount} (${(e as Error).message})`);
      }
    }
    return start();
  } finally {
    for (const h of moved.reverse()) writeFileSync(join(h.mount, h.own, 'cgroup.procs'), String(process.pid));
  }
}

/** Removes a stopped host's cgroups, deepest first (cgroup directories go by rmdir only, once empty). */
export function removeHostCgroups(machine: string): void {
  const rm = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return;
    }
    for (const e of entries) rm(join(dir, e));
    try {
      rmdirSync(dir);
    } catch {
      // Still holds a process (the host is not down): left, and reported by the leftovers check.
    }
  };
  for (const dir of hostCgroupDirs(machine)) rm(dir);
}

export function bootHost(host: HostSpec, root: string, logFile: string): ProcRecord {
  const args = [
    '-D', root,
    '--boot',
    // No systemd/dbus on the machine itself: do not register with machined or create a scope.
    '--register=no', '--keep-unit',
    `--machine=${host.machine}`,
    `--network-namespace-path=/run/netns/${host.netns}`,
    // ufw/iptables inside the host.
    '--capability=CAP_NET_ADMIN',
    // The host's own files stay authoritative: no resolver or timezone copied in from the machine.
    '--resolv-conf=off', '--timezone=off', '--link-journal=no',
    '--console=read-only',
  ];
  // The host has a network namespace of its own (as a VM has its own network stack), but nspawn
  // leaves /proc/sys/net read-only unless it made the namespace itself: let the host set its own
  // network sysctls (the common role's hardening, ufw's), and nothing else of the kernel's.
  const pid = inHostCgroup(host.machine, () =>
    spawnDetached('systemd-nspawn', args, logFile, { ...process.env, SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'network' }),
  );
  return { pid, exe: 'systemd-nspawn', marker: `--machine=${host.machine}` };
}

/** Orderly shutdown (nspawn turns SIGTERM into a container poweroff), then a hard kill of the whole container. */
export async function shutdownHost(rec: ProcRecord | undefined): Promise<void> {
  await stopProcess(rec, 30_000, () => (rec ? childPids(rec.pid) : []));
}

function portOpen(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export function sshArgs(key: string, knownHosts: string, address: string, command: string[]): string[] {
  return [
    '-i', key,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=5',
    '-o', 'LogLevel=ERROR',
    `root@${address}`,
    '--',
    // ssh joins its arguments into one remote shell line; quoting each keeps argv boundaries.
    command.map(shellQuote).join(' '),
  ];
}

export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Polls port 22, then proves a real login with host-key verification. */
export async function waitForSsh(
  host: { name: string; address: string },
  key: string,
  knownHosts: string,
  timeoutMs: number,
  alive: () => boolean,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  let lastError = 'port 22 closed';
  while (Date.now() < end) {
    if (!alive()) throw new LabError(`${host.name}: container exited during boot`);
    if (await portOpen(host.address, 22, 1000)) {
      const res = await run('ssh', sshArgs(key, knownHosts, host.address, ['true']), { allowFail: true, timeoutMs: 15_000 });
      if (res.code === 0) return;
      lastError = res.stderr.trim().split('\n').pop() ?? `ssh exit ${res.code}`;
    }
    await sleep(250);
  }
  throw new LabError(`${host.name} (${host.address}) not reachable over SSH after ${Math.round(timeoutMs / 1000)} s: ${lastError}`);
}

export function hostAlive(rec: ProcRecord | undefined): boolean {
  return isAlive(rec);
}

export function removeHostDirs(stateDir: string, host: string): void {
  rmSync(hostDirs(stateDir, host).base, { recursive: true, force: true });
}
