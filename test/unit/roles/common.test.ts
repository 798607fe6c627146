/**
 * The common role without a host: its var checks, the tasks it builds, and the shell it sends
 * (run here with a real sh and stand-ins for apt-get and findmnt, or against this machine's own /proc/sys).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import { renderTemplate, type Task } from '../../../src/modules/index.ts';
import { role } from '../../../src/roles/common/index.ts';
import {
  PROC_HIDEPID_MOUNTED, SECURITY_UPDATES_PENDING, SECURITY_UPGRADE, SHM_MOUNTED_HARDENED, SYSCTL_FILE, SYSCTL_HARDENING,
  sysctlLive, sysctlPath,
} from '../../../src/roles/common/hardening.ts';
import { debianFacts } from '../modules/fixtures.ts';
import { problemsOf, roleVarsFor } from './helpers.ts';

const host = { name: 'web-01', address: '10.9.0.11', groups: ['all'], vars: {}, connection: {} } as unknown as Host;

function expand(vars: Record<string, unknown> = {}, facts: Partial<Facts> = {}): Task[] {
  return role.tasks({
    host,
    facts: { ...debianFacts(), ...facts },
    vars: roleVarsFor(role, host, vars),
    inventory: {} as Inventory,
    hostsIn: () => [],
    file: (rel) => path.resolve(import.meta.dirname, '../../../src/roles/common', rel),
  });
}

const byName = (tasks: Task[], name: string) => tasks.find((t) => t.name === name);
const params = (t: Task | undefined) => t?.params as Record<string, unknown>;
const copied = (tasks: Task[], dest: string) => tasks.find((t) => t.module === 'copy' && params(t).dest === dest);

/** A directory of stand-in commands, first in PATH. */
const fakeBin = mkdtempSync(path.join(tmpdir(), 'provision-common-'));
afterAll(() => rmSync(fakeBin, { recursive: true, force: true }));
function fake(name: string, script: string) {
  writeFileSync(path.join(fakeBin, name), `#!/bin/sh\n${script}\n`);
  chmodSync(path.join(fakeBin, name), 0o755);
}
function sh(script: string, env: Record<string, string> = {}) {
  return spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}`, ...env } });
}

describe('common role: vars', () => {
  it('accepts its defaults', () => {
    expect(problemsOf(role, host, {})).toEqual([]);
  });

  it('names every bad hardening var before any connection', () => {
    const bad = {
      sysctl_hardening: 'yes',
      sysctl_overrides: { 'kernel.sysrq': '1; reboot', 'not a key': 1, 'net.ipv4.ip_forward': null },
      login_umask: '0277a',
      shell_timeout: -5,
      password_min_length: 4,
      ssh_allow_tcp_forwarding: 'sometimes',
      ssh_max_sessions: 0,
      proc_hidepid: 'on',
      aide: 1,
    };
    const problems = problemsOf(role, host, bad).join('\n');
    for (const name of ['sysctl_hardening:', 'sysctl_overrides.kernel.sysrq:', 'sysctl_overrides: "not a key"', 'login_umask:', 'shell_timeout:', 'password_min_length:', 'ssh_allow_tcp_forwarding:', 'ssh_max_sessions:', 'proc_hidepid:', 'aide:']) {
      expect(problems).toContain(name);
    }
    // null is how an override drops one of the role's keys: accepted.
    expect(problems).not.toContain('net.ipv4.ip_forward');
  });
});

describe('common role: hardening tasks', () => {
  it('installs what the measures need in the role\'s one apt run, then the pending security updates', () => {
    const tasks = expand();
    const first = params(tasks[0]).packages as string[];
    expect(first).toEqual(expect.arrayContaining(['unattended-upgrades', 'libpam-pwquality', 'libpam-tmpdir', 'aide', 'aide-common', 'chkrootkit']));
    expect(tasks[1]!.module).toBe('command');
    expect(params(tasks[1])).toMatchObject({ cmd: SECURITY_UPGRADE, onlyif: SECURITY_UPDATES_PENDING });
    const off = expand({ security_updates_on_converge: false, password_quality: false, pam_tmpdir: false, aide: false, rootkit_check: false });
    expect(params(off[0]).packages).not.toEqual(expect.arrayContaining(['libpam-pwquality']));
    expect(off.some((t) => params(t).cmd === SECURITY_UPGRADE)).toBe(false);
    expect(off.some((t) => String(params(t).cmd ?? '').includes('aideinit'))).toBe(false);
  });

  it('writes the kernel settings (never log_martians, which ufw owns) and applies them against a check of the live values', () => {
    const tasks = expand({ sysctl_overrides: { 'kernel.sysrq': 176, 'net.ipv4.tcp_syncookies': null } });
    const content = String(params(copied(tasks, SYSCTL_FILE)).content);
    expect(content).toContain('kernel.kptr_restrict = 2\n');
    expect(content).toContain('net.ipv4.conf.all.rp_filter = 1\n');
    expect(content).toContain('kernel.sysrq = 176\n');
    expect(content).not.toContain('tcp_syncookies');
    expect(content).not.toContain('log_martians');
    const live = params(byName(tasks, 'kernel hardening settings are live (the keys this host may set)'));
    expect(live.unless).toContain(`${sysctlPath('kernel.sysrq')}=176 `);
    expect(expand({ sysctl_hardening: false }).some((t) => t.module === 'file' && params(t).path === SYSCTL_FILE && params(t).state === 'absent')).toBe(true);
  });

  it('keeps USB and FireWire storage out with the unused protocols; no core dumps for logins and services', () => {
    const tasks = expand();
    const modules = String(params(copied(tasks, '/etc/modprobe.d/provision-disabled-modules.conf')).content);
    expect(modules).toContain('blacklist usb-storage\ninstall usb-storage /bin/false\n');
    expect(modules).toContain('install firewire-core /bin/false\n');
    expect(String(params(copied(tasks, '/etc/systemd/coredump.conf.d/10-provision.conf')).content)).toContain('Storage=none\nProcessSizeMax=0\n');
    expect(String(params(copied(tasks, '/etc/profile.d/provision-no-core-dumps.sh')).content)).toContain('ulimit -c 0\n');
  });

  it('sshd: local forwarding only (jump hosts and tunnels keep working) and a bound on sessions per connection', () => {
    const render = (vars: Record<string, unknown>) => {
      const t = byName(expand(vars), 'harden sshd (drop-in)')!;
      const p = t.params as { src: string; vars: Record<string, unknown> };
      return renderTemplate(p.src, p.vars);
    };
    expect(render({})).toMatch(/^AllowTcpForwarding local\nMaxSessions 4\n/m);
    // The boolean form of earlier inventories still means what it meant.
    expect(render({ ssh_allow_tcp_forwarding: true })).toContain('AllowTcpForwarding yes\n');
    expect(render({ ssh_allow_tcp_forwarding: false })).toContain('AllowTcpForwarding no\n');
  });
});

describe('common role: the shell it sends', () => {
  const lists = mkdtempSync(path.join(tmpdir(), 'provision-lists-'));
  afterAll(() => rmSync(lists, { recursive: true, force: true }));
  const securityIndex = path.join(lists, 'deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages');
  const inst = (pkg: string, archive: string) => `Inst ${pkg} [1.0] (1.1 ${archive} [amd64])\n`;
  fake(
    'apt-get',
    'case "$*" in *indextargets*) printf "%s" "$FAKE_TARGETS" ;; "-s upgrade") printf "%s" "$FAKE_UPGRADE" ;; *) echo "$*" >> "$FAKE_LOG" ;; esac',
  );
  const targets = `bookworm ${lists}/main_Packages\nbookworm-security ${securityIndex}\n`;

  it('security updates are pending: from a -security archive only, or when the security index was never fetched', () => {
    // The installed packages, as the probe asks dpkg-query for them (the real apt is in security-updates-probe.test.ts).
    fake('dpkg-query', 'printf "I libssl3 1.0\\nI tzdata 1.0\\n"');
    const pending = (env: Record<string, string>) => sh(SECURITY_UPDATES_PENDING, { FAKE_UPGRADE: '', FAKE_TARGETS: targets, ...env }).status;
    rmSync(securityIndex, { force: true });
    // A fresh host: the security suite is in the sources, its index not yet fetched: the refresh will bring updates.
    expect(pending({})).toBe(0);
    writeFileSync(securityIndex, '');
    expect(pending({})).toBe(1);
    expect(pending({ FAKE_UPGRADE: inst('tzdata', 'Debian:12.12/oldstable') })).toBe(1);
    // No newer version in the security index: apt is not asked, whatever it would say.
    expect(pending({ FAKE_UPGRADE: inst('libssl3', 'Debian-Security:12/oldstable-security') })).toBe(1);
    writeFileSync(securityIndex, 'Package: libssl3\nVersion: 1.1\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 0.9\nArchitecture: all\n');
    expect(pending({ FAKE_UPGRADE: inst('libssl3', 'Debian-Security:12/oldstable-security') })).toBe(0);
    expect(pending({ FAKE_UPGRADE: inst('tzdata', 'Debian:12.12/oldstable') })).toBe(1); // a newer one, but apt would not take it from security
    // No security suite in the sources at all: nothing will ever come from one.
    expect(pending({ FAKE_TARGETS: `bookworm ${lists}/main_Packages\n`, FAKE_UPGRADE: '' })).toBe(1);
    rmSync(path.join(fakeBin, 'dpkg-query'));
  });

  it('the upgrade refreshes the lists and installs exactly the packages a security archive updates', () => {
    const log = path.join(lists, 'apt.log');
    writeFileSync(log, '');
    const upgrade = inst('libssl3', 'Debian-Security:12/oldstable-security') + inst('tzdata', 'Debian:12.12/oldstable-updates') + inst('openssl', 'Debian:12.12/oldstable, Debian-Security:12/oldstable-security');
    const r = sh(SECURITY_UPGRADE, { FAKE_UPGRADE: upgrade, FAKE_LOG: log });
    expect(r.status, r.stderr).toBe(0);
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    expect(calls[0]).toMatch(/ update$/);
    expect(calls[1]).toMatch(/ install -y --only-upgrade --no-remove .*--force-confold libssl3 openssl$/);
    writeFileSync(log, '');
    expect(sh(SECURITY_UPGRADE, { FAKE_UPGRADE: '', FAKE_LOG: log }).status).toBe(0);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1); // the refresh, no install
  });

  it('mount checks: /dev/shm needs all of nosuid, nodev, noexec; /proc needs hidepid', () => {
    fake('findmnt', 'printf "%s\\n" "$FAKE_OPTIONS"');
    expect(sh(SHM_MOUNTED_HARDENED, { FAKE_OPTIONS: 'rw,nosuid,nodev,noexec,size=65536k' }).status).toBe(0);
    expect(sh(SHM_MOUNTED_HARDENED, { FAKE_OPTIONS: 'rw,nosuid,nodev,size=65536k' }).status).toBe(1);
    expect(sh(SHM_MOUNTED_HARDENED, { FAKE_OPTIONS: 'rw,noexec,nodev' }).status).toBe(1);
    expect(sh(PROC_HIDEPID_MOUNTED, { FAKE_OPTIONS: 'rw,nosuid,nodev,noexec,relatime,hidepid=invisible' }).status).toBe(0);
    expect(sh(PROC_HIDEPID_MOUNTED, { FAKE_OPTIONS: 'rw,relatime,hidepid=2' }).status).toBe(0);
    expect(sh(PROC_HIDEPID_MOUNTED, { FAKE_OPTIONS: 'rw,nosuid,nodev,noexec,relatime' }).status).toBe(1);
  });

  // Against this machine's own kernel: sysctl files answer only a read from their start, so a shell's
  // byte-by-byte `read` got "1" of "4194304" and then end of file, and the check never passed (every
  // converge reported the settings as changed). Needs root, for whom the files are writable (checked).
  it.skipIf(process.getuid?.() !== 0)('the live check reads multi-digit values of /proc/sys whole', () => {
    const key = 'kernel.pid_max';
    const value = readFileSync(sysctlPath(key), 'utf8').trim();
    expect(value.length).toBeGreaterThan(1);
    expect(sh(sysctlLive({ [key]: value })).status).toBe(0);
    expect(sh(sysctlLive({ [key]: `${value}0` })).status).toBe(1);
    // A key this kernel does not have is not this host's to set.
    expect(sh(sysctlLive({ 'kernel.no_such_key_here': '1' })).status).toBe(0);
  });

  it('every default kernel setting is a dotted key with a number', () => {
    for (const [k, v] of Object.entries(SYSCTL_HARDENING)) {
      expect(k).toMatch(/^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/);
      expect(Number.isInteger(v)).toBe(true);
    }
  });
});
