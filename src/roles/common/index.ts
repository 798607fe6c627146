import { type Task } from '../../modules/index.js';
import { legacyRole } from '../define.js';
import type { RoleContext } from '../types.js';
import { apt, copy, file, lineinfile, service, template, user } from '../../modules/tasks.js';
import { checkBoolean, checkOneOf } from '../checks.js';

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
  const tplVars = { ...v, sudo_users: sudoers.map((u) => u.name), security_origins: securityOrigins(ctx) };

  const tasks: Task[] = [
    // One apt run for everything the role needs (each run costs seconds of dpkg overhead). It refreshes
    // the package lists first when they are older than apt_cache_valid_time; later apt tasks of the
    // run then know they are fresh. (A refresh with nothing to install would be a change every hour.)
    apt('refresh the apt cache; install the base packages, time sync and unattended-upgrades', {
      packages: unique([...list(v.base_packages), ...list(v.extra_packages), timeSync.pkg, 'unattended-upgrades']),
      cache_valid_time: cacheAge,
    }),

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

export const CORE_DUMPS_FILE = '/etc/security/limits.d/10-provision-no-core-dumps.conf';
export const MODPROBE_FILE = '/etc/modprobe.d/provision-disabled-modules.conf';

/**
 * What a hardening audit (lynis) asks of every host and this role can give without changing how the
 * host works: a legal banner, no core dumps (they can hold secrets), network protocols nobody here
 * uses kept out of the kernel, password ageing and hashing rounds for local accounts made later.
 */
function hardeningTasks(v: Record<string, unknown>): Task[] {
  const tasks: Task[] = [];
  const banner = String(v.login_banner ?? '');
  if (banner) {
    for (const dest of ['/etc/issue', '/etc/issue.net']) {
      tasks.push(copy(`login banner (${dest})`, { dest, content: banner.endsWith('\n') ? banner : `${banner}\n`, mode: '0644', owner: 'root', group: 'root' }));
    }
  }
  tasks.push(
    v.disable_core_dumps
      ? copy('no core dumps', { dest: CORE_DUMPS_FILE, content: '# Managed by provision (role common): no core dumps (they can hold secrets).\n* hard core 0\n* soft core 0\n', mode: '0644' })
      : file('core dumps as the system sets them', { path: CORE_DUMPS_FILE, state: 'absent' }),
  );
  const modules = list(v.disabled_kernel_modules);
  tasks.push(
    modules.length
      ? copy('kernel modules nobody here uses stay out', {
          dest: MODPROBE_FILE,
          content: '# Managed by provision (role common): modules that are never loaded on this host.\n' + modules.map((m) => `blacklist ${m}\ninstall ${m} /bin/false\n`).join(''),
          mode: '0644',
          // A minimal system (no kmod yet) has no /etc/modprobe.d; the file is for whenever modules load.
          make_parents: true,
        })
      : file('no kernel modules kept out', { path: MODPROBE_FILE, state: 'absent' }),
  );
  const loginDefs: Array<[string, string]> = [
    ['PASS_MAX_DAYS', String(v.password_max_days)],
    ['PASS_MIN_DAYS', String(v.password_min_days)],
    ['SHA_CRYPT_MIN_ROUNDS', '5000'],
    ['SHA_CRYPT_MAX_ROUNDS', '50000'],
  ];
  for (const [key, value] of loginDefs) {
    tasks.push(lineinfile(`login.defs: ${key} ${value}`, { path: '/etc/login.defs', regexp: `^#?\\s*${key}\\s`, line: `${key}\t${value}` }));
  }
  return tasks;
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
  for (const name of ['ssh_x11_forwarding', 'ssh_allow_agent_forwarding', 'ssh_allow_tcp_forwarding', 'disable_core_dumps']) problems.push(...checkBoolean(vars, name));
  problems.push(...checkOneOf(vars, 'ssh_log_level', SSH_LOG_LEVELS));
  if (typeof vars.login_banner !== 'string' || /[\\]/.test(vars.login_banner)) problems.push('login_banner: must be a text without backslashes (getty expands them), or "" to leave /etc/issue alone');
  const mods = vars.disabled_kernel_modules;
  if (!Array.isArray(mods) || mods.some((m) => typeof m !== 'string' || !/^[a-z0-9_-]+$/.test(m))) problems.push('disabled_kernel_modules: must be a list of kernel module names, like [dccp, sctp]');
  for (const name of ['password_max_days', 'password_min_days']) {
    const d = vars[name];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > 99999) problems.push(`${name}: must be a whole number of days from 0 to 99999`);
  }
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

// Not converted to a vars schema yet: this role is being changed on another branch (see legacyRole).
export const role = legacyRole({
  name: 'common',
  description: 'Base system: apt cache, base packages, time sync, admin users with sudo, hardened sshd, unattended security upgrades, audit hardening (banner, no core dumps, unused protocols off, password ageing)',
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
    /** Jump hosts and SSH tunnels (e.g. to MySQL) need it on the host they pass through. */
    ssh_allow_tcp_forwarding: true,
    /** VERBOSE logs the fingerprint of the key each login used. */
    ssh_log_level: 'VERBOSE',
    /** /etc/issue and /etc/issue.net; "" leaves them as they are. */
    login_banner: 'Authorised access only. Activity on this system is monitored and logged.',
    disable_core_dumps: true,
    /** Kept out of the kernel (blacklisted, and refused when asked for by name). */
    disabled_kernel_modules: ['dccp', 'sctp', 'rds', 'tipc'],
    /** Password ageing for local accounts created later (login.defs); admin users have no password. */
    password_max_days: 365,
    password_min_days: 1,
    /** More unattended-upgrades origin patterns beyond the release's security archive. */
    unattended_upgrades_extra_origins: [],
  },
  tasks: commonTasks,
  handlers: () => [service('reload ssh', { name: 'ssh', state: 'reloaded' })],
  validate,
});
