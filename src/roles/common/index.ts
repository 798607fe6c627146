import { type Task } from '../../modules/index.js';
import { z } from 'zod';
import { defineRole, problemIf, withRules } from '../define.js';
import type { RoleContext, VarIssue } from '../types.js';
import { absolutePath, bool, doc, numberFrom, oneOf, shown, stringList, wholeNumber, text } from '../vars.js';
import { apt, file, service, template, user } from '../../modules/tasks.js';
import { hardeningPackages, hardeningTasks, hardeningVars, securityUpdateTasks, sysctlKeyRule } from './hardening.js';

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
const SSH_LOG_LEVELS = ['QUIET', 'FATAL', 'ERROR', 'INFO', 'VERBOSE', 'DEBUG', 'DEBUG1', 'DEBUG2', 'DEBUG3'] as const;

function commonTasks(ctx: RoleContext<CommonVars>): Task[] {
  const v = ctx.vars;
  const inContainer = CONTAINERS.has(ctx.facts.virtualization);
  const timeSync = TIME_SYNC[v.time_sync]!;
  const users = v.admin_users.filter((u) => u.state !== 'absent');
  const sudoers = users.filter((u) => u.sudo);
  const cacheAge = v.apt_cache_valid_time;
  const tplVars = { ...v, sudo_users: sudoers.map((u) => u.name), security_origins: securityOrigins(ctx), ssh_tcp_forwarding: tcpForwarding(v.ssh_allow_tcp_forwarding) };

  const tasks: Task[] = [
    // One apt run for everything the role needs (each run costs seconds of dpkg overhead). It refreshes
    // the package lists first when they are older than apt_cache_valid_time; later apt tasks of the
    // run then know they are fresh. (A refresh with nothing to install would be a change every hour.)
    apt('refresh the apt cache; install the base packages, time sync and unattended-upgrades', {
      packages: unique([...v.base_packages, ...v.extra_packages, timeSync.pkg, 'unattended-upgrades', ...hardeningPackages(v)]),
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
  for (const u of v.admin_users) {
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
const TCP_FORWARDING = ['yes', 'no', 'local', 'remote', 'all'] as const;
function tcpForwarding(v: boolean | string): string {
  return v === true ? 'yes' : v === false ? 'no' : String(v);
}

/** Origins unattended-upgrades may take packages from: the security archive of the host's release. */
function securityOrigins(ctx: RoleContext<CommonVars>): string[] {
  const extra = ctx.vars.unattended_upgrades_extra_origins;
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

const PACKAGE = /^[a-z0-9][a-z0-9+.-]*$/;
/**
 * One unattended-upgrades Origins-Pattern: `key=value` pairs, comma-separated, with the keys it knows.
 * A value stays inside the quoted string of an apt.conf file.
 */
const ORIGIN_KEY = '(?:origin|o|label|l|archive|a|suite|codename|n|component|c|site)';
// A value: no quote, backslash, `;`, brace or line break, but unattended-upgrades' own ${distro_codename} / ${distro_id}.
const ORIGIN_VALUE = '(?:[^",;{}\\\\\\r\\n$]|\\$\\{distro_(?:codename|id)\\}|\\$(?!\\{))+';
const ORIGIN_PATTERN = new RegExp(`^${ORIGIN_KEY}=${ORIGIN_VALUE}(?:,${ORIGIN_KEY}=${ORIGIN_VALUE})*$`);
const packages = (description: string, initial: string[] = []) =>
  stringList(PACKAGE, 'a list of Debian package names', 'list of package names').default(initial).describe(description);
const KEYS = 'a non-empty list of public keys ("ssh-ed25519 AAAA… comment"), one per entry';
const PUBLIC_KEY = (k: string) => /^(ssh-|ecdsa-|sk-)\S+ \S+/.test(k) && !k.includes('\n');

const adminUser = z.strictObject(
  {
    name: text(USERNAME, 'a user name like "deploy"', 'user name'),
    ssh_keys: z.array(z.string({ error: KEYS }), { error: KEYS }).optional(),
    sudo: bool().optional(),
    shell: absolutePath().optional(),
    state: oneOf(['present', 'absent']).optional(),
  },
  { error: 'a map { name, ssh_keys, sudo }' },
);

/** Admin users: each name once, never root; a user kept (not state: absent) has its keys and says whether it has sudo. */
function adminUserProblems(users: unknown): VarIssue[] {
  if (!Array.isArray(users)) return [];
  const seen = new Set<string>();
  return users.flatMap((u: unknown, i): VarIssue[] => {
    if (!u || typeof u !== 'object' || Array.isArray(u)) return [];
    const x = u as Record<string, unknown>;
    const at = (field: string) => ['admin_users', i, field];
    const problems: VarIssue[] = [];
    if (typeof x.name === 'string') {
      problems.push(...problemIf(x.name === 'root', at('name'), 'root is not an admin user to manage here'));
      problems.push(...problemIf(seen.has(x.name), at('name'), `${x.name} is listed twice`));
      seen.add(x.name);
    }
    if (x.state === 'absent') return problems;
    const keys = x.ssh_keys;
    // A list of strings is zod's to refuse when it is anything else; here: missing, empty, or not keys.
    const badKeys = keys === undefined || (Array.isArray(keys) && keys.every((k) => typeof k === 'string') && (keys.length === 0 || !keys.every(PUBLIC_KEY)));
    problems.push(...problemIf(badKeys, at('ssh_keys'), KEYS));
    problems.push(...problemIf(x.sudo === undefined, at('sudo'), 'true or false (required unless state: absent)'));
    return problems;
  });
}

const vars = withRules(
  z.object({
    base_packages: packages('Always installed.', ['curl', 'ca-certificates', 'python3', 'sudo', 'less', 'gnupg', 'procps', 'iproute2', 'lsb-release', 'openssh-server']),
    extra_packages: packages('More packages for this host or group.'),
    apt_cache_valid_time: numberFrom(0, (v) => `a number of seconds, got ${shown(v)}`).default(3600).describe('Seconds before the package lists are refreshed.'),
    time_sync: oneOf(['systemd-timesyncd', 'chrony']).default('systemd-timesyncd').describe('The time daemon (skipped in a container: its clock is the machine\'s).'),
    admin_users: doc(z.array(adminUser, { error: 'a list of { name, ssh_keys: [...], sudo: true|false }' }), {
      type: 'list of { name, ssh_keys, sudo, shell?, state? }',
    })
      .default([])
      .describe('`[{ name, ssh_keys: [..], sudo: true, shell?: /bin/bash, state?: present|absent }]`: key-only logins, password locked; `state: absent` removes the user.'),
    sudo_nopasswd: bool().default(true).describe('Admin users log in with keys only and have no password: sudo asks for none.'),
    ssh_permit_root_login: oneOf(['yes', 'no', 'prohibit-password', 'forced-commands-only'])
      .default('prohibit-password')
      .describe('sshd `PermitRootLogin`: root with a key, as provision itself connects; never `no` unless the inventory connects as an admin user with `become`.'),
    ssh_max_auth_tries: wholeNumber(1, 20).default(3).describe('sshd `MaxAuthTries`.'),
    ssh_login_grace_time: wholeNumber(10, undefined, (v) => `a number of seconds, at least 10, got ${shown(v)}`).default(30).describe('sshd `LoginGraceTime`, seconds.'),
    ssh_x11_forwarding: bool().default(false).describe('sshd `X11Forwarding`.'),
    ssh_allow_agent_forwarding: bool().default(false).describe('sshd `AllowAgentForwarding`.'),
    ssh_allow_tcp_forwarding: doc(
      z.union([z.boolean(), z.enum(TCP_FORWARDING)], { error: (iss) => `true, false or one of ${TCP_FORWARDING.join(', ')}, got ${shown(iss.input)}` }),
      { type: `true/false | ${TCP_FORWARDING.map((x) => `\`${x}\``).join(' | ')}` },
    )
      .default('local')
      .describe('sshd `AllowTcpForwarding`: `local` keeps jump hosts and SSH tunnels (`ssh -J`, `ssh -L`) and refuses remote forwarding (`ssh -R`); `true`/`false` mean `yes`/`no`.'),
    ssh_max_sessions: wholeNumber(1, 64).default(4).describe('sshd `MaxSessions`: sessions (shells, commands, sftp) one connection may multiplex.'),
    ssh_log_level: oneOf(SSH_LOG_LEVELS).default('VERBOSE').describe('sshd `LogLevel`; VERBOSE logs the key fingerprint of each login.'),
    ...hardeningVars,
    unattended_upgrades_extra_origins: stringList(ORIGIN_PATTERN, 'a list of unattended-upgrades origin patterns like "origin=Debian,codename=${distro_codename},label=Debian"', 'list of origin patterns')
      .default([])
      .describe(
        "More unattended-upgrades `Origins-Pattern` entries beyond the release's security archive: comma-separated `key=value` with keys origin/o, label/l, archive/a, suite, codename/n, component/c, site (no `\"`, `;`, `{`, `}`, `\\` or line break: each is written inside a quoted string of an apt.conf file).",
      ),
  }),
  [
    {
      says: '`admin_users`: no name twice, never `root`; a user not `state: absent` has `ssh_keys` (at least one public key, one per entry) and `sudo`.',
      check: (v) => adminUserProblems(v.admin_users),
    },
    sysctlKeyRule,
  ],
);

type CommonVars = z.output<typeof vars>;

export const role = defineRole({
  name: 'common',
  description:
    'Base system: apt cache, base packages, time sync, admin users with sudo, hardened sshd, security updates (on converge and unattended), audit hardening (banner, no core dumps, unused protocols and USB storage off, kernel sysctls, password policy, shell timeout, /dev/shm noexec, AIDE)',
  vars,
  tasks: commonTasks,
  handlers: () => [service('reload ssh', { name: 'ssh', state: 'reloaded' })],
});
