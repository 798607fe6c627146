import { type Task } from '../../modules/index.js';
import type { RoleContext, RoleDef } from '../types.js';
import { apt, file, service, template, user } from '../../modules/tasks.js';
import { checkBoolean, checkOneOf } from '../checks.js';
import { hardeningDefaults, hardeningPackages, hardeningTasks, securityUpdateTasks, validateHardening } from './hardening.js';

export interface AdminUser {
  name: string;
  ssh_keys: string[];
  sudo: boolean;
  shell?: string;
  state?: 'present' | 'absent';
}

/** Inside these, the clock belongs to the machine running the container: a time daemon cannot set it. */
const CONTAINERS = new Set(['systemd-nspawn', 'lxc', 'lxc-libvirt', 'docker', 'podman', 'openvz', 'rkt', 'wsl', 'proot', 'pouch', 'container-other']);

const TIME_SYNC: Record<string, { pkg: string; unit: string }> = {
  'systemd-timesyncd': { pkg: 'systemd-timesyncd', unit: 'systemd-timesyncd' },
  chrony: { pkg: 'chrony', unit: 'chrony' },
};

export const SSHD_DROPIN = '/etc/ssh/sshd_config.d/10-provision.conf';
export const SUDOERS_DROPIN = '/etc/sudoers.d/90-provision-admins';

/**
 * `sshd -t` on a throwaway main config that reads the candidate first and then the whole live
 * config (with every other drop-in): a typo in the candidate, or a clash with the rest, fails
 * before the file replaces the live one. Include nests, so the live file needs no rewriting.
 */
export const SSHD_VALIDATE =
  'm=$(mktemp) && { echo "Include %s"; echo "Include /etc/ssh/sshd_config"; } > "$m" && /usr/sbin/sshd -t -f "$m"; r=$?; rm -f "$m"; exit $r';

const USERNAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const SSH_LOG_LEVELS = ['QUIET', 'FATAL', 'ERROR', 'INFO', 'VERBOSE', 'DEBUG', 'DEBUG1', 'DEBUG2', 'DEBUG3'];

function adminUsers(vars: Record<string, unknown>): AdminUser[] {
  return (vars.admin_users as AdminUser[] | undefined) ?? [];
}

function commonTasks(ctx: RoleContext): Task[] {
  const v = ctx.vars;
  const inContainer = CONTAINERS.has(ctx.facts.virtualization);
  const timeSync = TIME_SYNC[String(v.time_sync)]!;
  const users = adminUsers(v).filter((u) => u.state !== 'absent');
  const sudoers = users.filter((u) => u.sudo);
  const cacheAge = Number(v.apt_cache_valid_time);
  const tplVars = { ...v, sudo_users: sudoers.map((u) => u.name), security_origins: securityOrigins(ctx), ssh_tcp_forwarding: tcpForwarding(v.ssh_allow_tcp_forwarding) };

  const tasks: Task[] = [
    // One apt run for everything the role needs (each run costs seconds of dpkg overhead). It refreshes
    // the package lists first when they are older than apt_cache_valid_time; later apt tasks of the
    // run then know they are fresh. (A refresh with nothing to install would be a change every hour.)
    apt('refresh the apt cache; install the base packages, time sync and unattended-upgrades', {
      packages: unique([...list(v.base_packages), ...list(v.extra_packages), timeSync.pkg, 'unattended-upgrades', ...hardeningPackages(v)]),
      cache_valid_time: cacheAge,
    }),
    ...securityUpdateTasks(v),

    // Time: one daemon, chosen by var. In a container the service is skipped (the name says why).
    service(
      inContainer
        ? `${timeSync.unit}: not started, this host is a container (${ctx.facts.virtualization}) and its clock is the machine's`
        : `enable and start ${timeSync.unit}`,
      { name: timeSync.unit, state: 'started', enabled: true },
      { when: !inContainer },
    ),
  ];

  // Admin users: a key-only login each, sudo through one validated drop-in.
  for (const u of adminUsers(v)) {
    tasks.push(
      u.state === 'absent'
        ? user(`remove admin user ${u.name}`, { name: u.name, state: 'absent' })
        : user(`admin user ${u.name}`, { name: u.name, shell: u.shell ?? '/bin/bash', authorized_keys: u.ssh_keys, password_locked: true }),
    );
  }
  tasks.push(
    sudoers.length
      ? template('sudo for the admin users', {
          src: ctx.file('templates/sudoers.njk'),
          dest: SUDOERS_DROPIN,
          mode: '0440',
          owner: 'root',
          group: 'root',
          validate: 'visudo -cf %s',
          vars: tplVars,
        })
      : file('no sudo drop-in without sudo admin users', { path: SUDOERS_DROPIN, state: 'absent' }),
  );

  tasks.push(
    template('harden sshd (drop-in)', {
      src: ctx.file('templates/sshd.conf.njk'),
      dest: SSHD_DROPIN,
      mode: '0644',
      owner: 'root',
      group: 'root',
      validate: SSHD_VALIDATE,
      vars: tplVars,
    }, { notify: 'reload ssh' }),

    template('enable the periodic unattended upgrade', {
      src: ctx.file('templates/20auto-upgrades.njk'),
      dest: '/etc/apt/apt.conf.d/20auto-upgrades',
      mode: '0644',
      validate: 'apt-config -c %s dump >/dev/null',
      vars: tplVars,
    }),
    template('unattended upgrades take security updates', {
      src: ctx.file('templates/52provision-unattended-upgrades.njk'),
      dest: '/etc/apt/apt.conf.d/52provision-unattended-upgrades',
      mode: '0644',
      validate: 'apt-config -c %s dump >/dev/null',
      vars: tplVars,
    }),
    service('the apt upgrade timer is on', { name: 'apt-daily-upgrade.timer', state: 'started', enabled: true }),
  );
  tasks.push(...hardeningTasks(v));
  return tasks;
}

/**
 * sshd's AllowTcpForwarding. `local` keeps what jump hosts and SSH tunnels use (direct-tcpip, `ssh -J`,
 * `ssh -L`) and refuses remote forwarding (`ssh -R`), which opens a listener on the host.
 */
const TCP_FORWARDING = ['yes', 'no', 'local', 'remote', 'all'];
function tcpForwarding(v: unknown): string {
  return v === true ? 'yes' : v === false ? 'no' : String(v);
}

/** Origins unattended-upgrades may take packages from: the security archive of the host's release. */
function securityOrigins(ctx: RoleContext): string[] {
  const extra = list(ctx.vars.unattended_upgrades_extra_origins);
  // ${distro_codename} is expanded by unattended-upgrades itself.
  const base =
    ctx.facts.os.family === 'ubuntu'
      ? ['origin=Ubuntu,archive=${distro_codename}-security,label=Ubuntu']
      : ['origin=Debian,codename=${distro_codename}-security,label=Debian-Security', 'origin=Debian,codename=${distro_codename},label=Debian-Security'];
  return [...base, ...extra];
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

function list(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : [];
}

function validate(vars: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const strList = (name: string) => {
    const v = vars[name];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || !/^[a-z0-9][a-z0-9+.-]*$/.test(x))) problems.push(`${name}: must be a list of Debian package names`);
  };
  strList('base_packages');
  strList('extra_packages');
  strList('unattended_upgrades_extra_origins');
  if (!(String(vars.time_sync) in TIME_SYNC)) problems.push(`time_sync: must be one of ${Object.keys(TIME_SYNC).join(', ')} (got ${JSON.stringify(vars.time_sync)})`);
  if (typeof vars.apt_cache_valid_time !== 'number' || vars.apt_cache_valid_time < 0) problems.push('apt_cache_valid_time: must be a number of seconds');
  const root = vars.ssh_permit_root_login;
  if (!['yes', 'no', 'prohibit-password', 'forced-commands-only'].includes(String(root))) {
    problems.push(`ssh_permit_root_login: must be yes, no, prohibit-password or forced-commands-only (got ${JSON.stringify(root)})`);
  }
  const tries = vars.ssh_max_auth_tries;
  if (typeof tries !== 'number' || !Number.isInteger(tries) || tries < 1 || tries > 20) problems.push('ssh_max_auth_tries: must be an integer from 1 to 20');
  const grace = vars.ssh_login_grace_time;
  if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 10) problems.push('ssh_login_grace_time: must be a number of seconds, at least 10');
  for (const name of ['ssh_x11_forwarding', 'ssh_allow_agent_forwarding']) problems.push(...checkBoolean(vars, name));
  const fwd = vars.ssh_allow_tcp_forwarding;
  if (typeof fwd !== 'boolean' && !TCP_FORWARDING.includes(String(fwd))) {
    problems.push(`ssh_allow_tcp_forwarding: true, false or one of ${TCP_FORWARDING.join(', ')}, got ${JSON.stringify(fwd)}`);
  }
  const sessions = vars.ssh_max_sessions;
  if (typeof sessions !== 'number' || !Number.isInteger(sessions) || sessions < 1 || sessions > 64) problems.push('ssh_max_sessions: must be an integer from 1 to 64');
  problems.push(...checkOneOf(vars, 'ssh_log_level', SSH_LOG_LEVELS));
  problems.push(...validateHardening(vars));
  if (typeof vars.sudo_nopasswd !== 'boolean') problems.push('sudo_nopasswd: must be true or false');

  const users = vars.admin_users;
  if (!Array.isArray(users)) {
    problems.push('admin_users: must be a list of { name, ssh_keys: [...], sudo: true|false }');
    return problems;
  }
  const seen = new Set<string>();
  users.forEach((u: unknown, i) => {
    const at = `admin_users[${i}]`;
    if (!u || typeof u !== 'object') return void problems.push(`${at}: must be { name, ssh_keys, sudo }`);
    const x = u as Record<string, unknown>;
    const allowed = new Set(['name', 'ssh_keys', 'sudo', 'shell', 'state']);
    for (const k of Object.keys(x)) if (!allowed.has(k)) problems.push(`${at}.${k}: unknown field (allowed: ${[...allowed].join(', ')})`);
    if (typeof x.name !== 'string' || !USERNAME.test(x.name)) return void problems.push(`${at}.name: must be a user name like "deploy"`);
    if (x.name === 'root') problems.push(`${at}.name: root is not an admin user to manage here`);
    if (seen.has(x.name)) problems.push(`${at}.name: ${x.name} is listed twice`);
    seen.add(x.name);
    if (x.state !== undefined && x.state !== 'present' && x.state !== 'absent') problems.push(`${at}.state: must be present or absent`);
    if (x.state === 'absent') return;
    if (!Array.isArray(x.ssh_keys) || x.ssh_keys.length === 0 || x.ssh_keys.some((k) => typeof k !== 'string' || !/^(ssh-|ecdsa-|sk-)\S+ \S+/.test(k) || k.includes('\n'))) {
      problems.push(`${at}.ssh_keys: must be a non-empty list of public keys ("ssh-ed25519 AAAA… comment"), one per entry`);
    }
    if (typeof x.sudo !== 'boolean') problems.push(`${at}.sudo: must be true or false`);
    if (x.shell !== undefined && (typeof x.shell !== 'string' || !x.shell.startsWith('/'))) problems.push(`${at}.shell: must be an absolute path`);
  });
  return problems;
}

export const role: RoleDef = {
  name: 'common',
  description: 'Base system: apt cache, base packages, time sync, admin users with sudo, hardened sshd, security updates (on converge and unattended), audit hardening (banner, no core dumps, unused protocols and USB storage off, kernel sysctls, password policy, shell timeout, /dev/shm noexec, AIDE)',
  defaults: {
    base_packages: ['curl', 'ca-certificates', 'python3', 'sudo', 'less', 'gnupg', 'procps', 'iproute2', 'lsb-release', 'openssh-server'],
    extra_packages: [],
    /** Refresh the package lists when they are older than this (seconds). */
    apt_cache_valid_time: 3600,
    /** systemd-timesyncd or chrony. */
    time_sync: 'systemd-timesyncd',
    admin_users: [],
    /** Admin users log in with keys only and have no password: sudo without one. */
    sudo_nopasswd: true,
    ssh_permit_root_login: 'prohibit-password',
    ssh_max_auth_tries: 3,
    ssh_login_grace_time: 30,
    ssh_x11_forwarding: false,
    ssh_allow_agent_forwarding: false,
    /** Jump hosts and SSH tunnels (e.g. to MySQL) need local forwarding on the host they pass through. */
    ssh_allow_tcp_forwarding: 'local',
    /** Sessions (shells, commands, sftp) one SSH connection may multiplex at once. */
    ssh_max_sessions: 4,
    /** VERBOSE logs the fingerprint of the key each login used. */
    ssh_log_level: 'VERBOSE',
    ...hardeningDefaults,
    /** More unattended-upgrades origin patterns beyond the release's security archive. */
    unattended_upgrades_extra_origins: [],
  },
  tasks: commonTasks,
  handlers: () => [service('reload ssh', { name: 'ssh', state: 'reloaded' })],
  validate,
};
