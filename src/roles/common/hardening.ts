import type { Task } from '../../modules/index.js';
import { command, copy, file, lineinfile } from '../../modules/tasks.js';
import { quote } from '../../util/quote.js';
import { z } from 'zod';
import { problemIf, type VarRule } from '../define.js';
import { bool, doc, shown, stringList, text, wholeNumber } from '../vars.js';

/**
 * What a hardening audit (lynis; the test id each measure answers is in docs/roles/common.md) asks of
 * every host and this role can give without changing how the site works. Each measure is a var with
 * a safe default. Kernel settings a container cannot set (the kernel is the machine's) are skipped
 * where the host cannot write them, and applied everywhere else.
 */

export const CORE_DUMPS_FILE = '/etc/security/limits.d/10-provision-no-core-dumps.conf';
export const COREDUMP_DROPIN = '/etc/systemd/coredump.conf.d/10-provision.conf';
export const CORE_DUMPS_PROFILE = '/etc/profile.d/provision-no-core-dumps.sh';
export const MODPROBE_FILE = '/etc/modprobe.d/provision-disabled-modules.conf';
export const SYSCTL_FILE = '/etc/sysctl.d/90-provision-hardening.conf';
export const PWQUALITY_FILE = '/etc/security/pwquality.conf.d/10-provision.conf';
export const SHELL_TIMEOUT_FILE = '/etc/profile.d/provision-shell-timeout.sh';
export const AIDE_CONF = '/etc/aide/aide.conf';
export const AIDE_DB = '/var/lib/aide/aide.db';

/**
 * Kernel settings of the CIS and lynis (KRNL-6000) profiles that change nothing the site uses.
 * net.ipv4.conf.*.log_martians is left out: ufw sets it to 0 whenever it starts (IPT_SYSCTL in
 * /etc/default/ufw), so a value of ours would flip back on every ufw start.
 */
export const SYSCTL_HARDENING: Record<string, number> = {
  'dev.tty.ldisc_autoload': 0,
  'fs.protected_fifos': 2,
  'fs.protected_hardlinks': 1,
  'fs.protected_regular': 2,
  'fs.protected_symlinks': 1,
  'fs.suid_dumpable': 0,
  'kernel.core_uses_pid': 1,
  'kernel.ctrl-alt-del': 0,
  'kernel.dmesg_restrict': 1,
  'kernel.kptr_restrict': 2,
  'kernel.perf_event_paranoid': 3,
  'kernel.randomize_va_space': 2,
  'kernel.sysrq': 0,
  'kernel.unprivileged_bpf_disabled': 1,
  'kernel.yama.ptrace_scope': 1,
  'net.core.bpf_jit_harden': 2,
  'net.ipv4.conf.all.accept_redirects': 0,
  'net.ipv4.conf.all.accept_source_route': 0,
  'net.ipv4.conf.all.rp_filter': 1,
  'net.ipv4.conf.all.secure_redirects': 0,
  'net.ipv4.conf.all.send_redirects': 0,
  'net.ipv4.conf.default.accept_redirects': 0,
  'net.ipv4.conf.default.accept_source_route': 0,
  'net.ipv4.conf.default.rp_filter': 1,
  'net.ipv4.conf.default.secure_redirects': 0,
  'net.ipv4.conf.default.send_redirects': 0,
  'net.ipv4.icmp_echo_ignore_broadcasts': 1,
  'net.ipv4.icmp_ignore_bogus_error_responses': 1,
  'net.ipv4.tcp_syncookies': 1,
  'net.ipv6.conf.all.accept_redirects': 0,
  'net.ipv6.conf.all.accept_source_route': 0,
  'net.ipv6.conf.default.accept_redirects': 0,
  'net.ipv6.conf.default.accept_source_route': 0,
};

/** Every apt/dpkg step here waits this long for a lock held by unattended-upgrades or another run. */
const LOCK_TIMEOUT = 120;
const APT = `DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=${LOCK_TIMEOUT}`;

/**
 * Security updates the package lists offer and `apt-get upgrade` would install: exactly what lynis
 * (PKGS-7392) and unattended-upgrades look for, an `Inst` line from a `-security` archive. Exits 0
 * when there are some, or when the sources have a security suite whose index was never fetched (a
 * host fresh from an image or installer: the refresh will bring them), so a plan made before the
 * first run predicts what that run does. A host whose sources have no security suite has none.
 *
 * `apt-get -s upgrade` resolves the whole archive (0.3-0.6 s of a host's CPU, in every run's state
 * read, plan and drift), so it runs only when it can say yes: when some installed package has a
 * version in a security index that is newer than the installed one (read from the indexes with
 * apt-helper, compared by dpkg). Without such a version no `Inst` line can come from a security
 * archive and the answer is no (~30 ms). An index that cannot be read leaves the answer to apt.
 */
export const SECURITY_UPDATES_PENDING = [
  "idx=$(apt-get indextargets --no-release-info --format '$(RELEASE) $(FILENAME)' 'Created-By: Packages' 2>/dev/null | awk '$1 ~ /(-security|\\/updates)$/ { print $2 }')",
  '[ -n "$idx" ] || exit 1',
  'fetched=no; for f in $idx; do for g in "$f"*; do [ -e "$g" ] && fetched=yes; done; done',
  '[ "$fetched" = yes ] || exit 0',
  // "installed-version security-version" for each installed package a security index lists at
  // another version; "?" when an index could not be read.
  // The installed versions come first ("I name version"), then the indexes' stanzas (whose other
  // lines are "Field: …" or a continuation starting with a space: never "I ").
  'pairs=$({ dpkg-query -W -f=\'I ${Package} ${Version}\\n\' 2>/dev/null; for f in $idx; do for g in "$f"*; do [ -e "$g" ] || continue; ' +
    '/usr/lib/apt/apt-helper cat-file "$g" 2>/dev/null || echo \'Package: ?\'; done; done; } | ' +
    "awk '/^I / { i[$2] = i[$2] \" \" $3; next } /^Package: / { p = $2; if (p == \"?\") print \"?\"; next } " +
    "/^Version: / && (p in i) { n = split(i[p], v, \" \"); for (k = 1; k <= n; k++) if (v[k] != $2) print v[k], $2 }' | sort -u)",
  'printf \'%s\\n\' "$pairs" | { while read -r have sec; do [ -n "$have" ] || continue; if [ "$have" = "?" ] || dpkg --compare-versions "$sec" gt "$have"; then exit 0; fi; done; exit 1; } || exit 1',
  "LC_ALL=C apt-get -s upgrade 2>/dev/null | grep '^Inst ' | grep -q -- '-security'",
].join('\n');

/**
 * Refresh the lists, then upgrade exactly the packages a security archive updates: conffiles kept,
 * and never a removal (--no-remove: apt stops instead, and the task fails with its reason).
 */
export const SECURITY_UPGRADE =
  `${APT} update && pkgs=$(LC_ALL=C apt-get -s upgrade | awk '/^Inst / && /-security/ { print $2 }') && ` +
  `{ [ -z "$pkgs" ] || ${APT} install -y --only-upgrade --no-remove --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $pkgs; }`;

/** Applies the keys of SYSCTL_FILE this host may set; the others belong to the kernel of the machine a container runs on. */
export const SYSCTL_APPLY =
  `sed -n 's/^\\([a-z0-9_.-]*\\) = \\(.*\\)$/\\1 \\2/p' ${SYSCTL_FILE} | ` +
  'while read -r k v; do p=/proc/sys/$(printf %s "$k" | tr . /); [ -w "$p" ] || continue; sysctl -q -w "$k=$v" || exit 1; done';

/** The path under /proc/sys of a sysctl key. */
export const sysctlPath = (key: string) => `/proc/sys/${key.replaceAll('.', '/')}`;

/**
 * Exits 0 when every key this host may set already has its value. A key the host cannot write (a
 * container's kernel.*, a key this kernel lacks) is not this host's to set. Read with cat, not the
 * shell's `read`: a sysctl file answers only a read from its start, so dash's byte-by-byte read
 * gets the first character and then end of file.
 */
export function sysctlLive(settings: Record<string, string>): string {
  const pairs = Object.entries(settings).map(([k, v]) => quote(`${sysctlPath(k)}=${v}`));
  return `for e in ${pairs.join(' ')}; do p=\${e%%=*}; want=\${e#*=}; [ -w "$p" ] || continue; cur=$(cat "$p") || exit 1; set -- $cur; [ "$*" = "$want" ] || exit 1; done`;
}

/** The role's settings (when sysctl_hardening) with sysctl_overrides on top (null drops a key), values as the kernel prints them. */
export function sysctlSettings(v: Record<string, unknown>): Record<string, string> {
  const merged: Record<string, unknown> = { ...(v.sysctl_hardening ? SYSCTL_HARDENING : {}), ...asMap(v.sysctl_overrides) };
  const out: Record<string, string> = {};
  for (const key of Object.keys(merged).sort()) {
    const value = merged[key];
    if (value === null || value === undefined) continue;
    out[key] = String(value).trim().split(/\s+/).join(' ');
  }
  return out;
}

export function sysctlFileContent(settings: Record<string, string>): string {
  return (
    '# Managed by provision (role common): kernel hardening. Keys a container cannot set (its kernel is the\n' +
    "# machine's) are skipped when applied; on a VM or metal all apply, at boot by systemd-sysctl.\n" +
    Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join('')
  );
}

/**
 * Debian's aide.conf with one change its own comment offers ("list some checksum explicitly here"):
 * SHA-512 only instead of every checksum compiled in, which makes building the database about ten
 * times cheaper (5 s of CPU instead of 57 on a lab web host) for the same detection. The groups are the
 * ones the rule files in /etc/aide/aide.conf.d (shipped per package by Debian) refer to.
 */
export const AIDE_CONF_CONTENT = `# Managed by provision (role common): Debian's aide.conf, with SHA-512 as the only checksum.
@@x_include_setenv UPAC_settingsd /etc/aide/aide.settings.d
@@x_include_setenv PATH /bin:/usr/bin

# The daily check (dailyaidecheck.timer) depends on these paths and settings
database_in=file:${AIDE_DB}
database_out=file:${AIDE_DB}.new
database_new=file:${AIDE_DB}.new
gzip_dbout=yes
report_ignore_e2fsattrs=VNIE

Checksums = sha512
database_attrs = Checksums

OwnerMode = p+u+g+ftype
Size = s+b
InodeData = OwnerMode+n+i+Size+l+X
StaticFile = m+c+Checksums
Full = InodeData+StaticFile
VarTime = InodeData+Checksums
VarInode = VarTime-i
VarFile = OwnerMode+n+l+X
VarDir = OwnerMode+n+i+X
RecreatedDir = OwnerMode+n+X
RamdiskData = InodeData-i
VarDirInode = RecreatedDir
VarDirTime = InodeData

ActLog = Full+growing+ANF+I
RotLog = Full
CompSerLog = Full+I+compressed
MidlSerLog = Full+I
LastSerLog = Full+ARF
Log = OwnerMode+n+growing+s+X
FreqRotLog = Log-growing-s
LowLog = Log-growing-s
LoSerMemberLog = Full+I+ANF
SerMemberLog  = Full+I
HiSerMemberLog = Full+I+ARF
LowDELog = SerMemberLog+ANF+ARF
SerMemberDELog = Full+ANF
LinkedLog = Log-n

@@x_include /etc/aide/aide.conf.d ^[a-zA-Z0-9_-]+$
`;

/** /dev/shm options: no device files, no set-uid, nothing executed from shared memory. */
export const SHM_OPTIONS = ['nosuid', 'nodev', 'noexec'];
const SHM_FSTAB = `tmpfs /dev/shm tmpfs defaults,${SHM_OPTIONS.join(',')} 0 0`;
export const SHM_MOUNTED_HARDENED = `o=,$(findmnt -no OPTIONS /dev/shm),; ${SHM_OPTIONS.map((x) => `case $o in *,${x},*) ;; *) exit 1 ;; esac`).join('; ')}`;

/**
 * /proc with hidepid=invisible: a user sees only its own processes, so a compromised service account
 * (the app's, www-data) cannot read the command lines and environments of root's or MySQL's. The
 * other options are the ones systemd mounts /proc with; `mount -o remount` and systemd at boot both
 * apply the whole fstab line.
 */
const PROC_FSTAB = 'proc /proc proc defaults,nosuid,nodev,noexec,hidepid=invisible 0 0';
export const PROC_HIDEPID_MOUNTED = 'case ,$(findmnt -no OPTIONS /proc), in *,hidepid=invisible,*|*,hidepid=2,*) ;; *) exit 1 ;; esac';

/** Packages the hardening needs, installed by the role's one apt run. */
export function hardeningPackages(v: Record<string, unknown>): string[] {
  const wanted: Array<[unknown, string[]]> = [
    [v.password_quality, ['libpam-pwquality']],
    [v.pam_tmpdir, ['libpam-tmpdir']],
    [v.aide, ['aide', 'aide-common']],
    [v.rootkit_check, ['chkrootkit']],
  ];
  return wanted.flatMap(([on, pkgs]) => (on ? pkgs : []));
}

/** Right after the role's apt run: the security updates a real host's unattended-upgrades would have taken. */
export function securityUpdateTasks(v: Record<string, unknown>): Task[] {
  if (!v.security_updates_on_converge) return [];
  return [
    command('install pending security updates (what unattended-upgrades would, now)', {
      cmd: SECURITY_UPGRADE,
      onlyif: SECURITY_UPDATES_PENDING,
      timeout: 1800,
    }),
  ];
}

export function hardeningTasks(v: Record<string, unknown>): Task[] {
  const tasks: Task[] = [];
  const banner = String(v.login_banner ?? '');
  if (banner) {
    for (const dest of ['/etc/issue', '/etc/issue.net']) {
      tasks.push(copy(`login banner (${dest})`, { dest, content: banner.endsWith('\n') ? banner : `${banner}\n`, mode: '0644', owner: 'root', group: 'root' }));
    }
  }

  // Core dumps can hold secrets (keys, passwords in memory): off for logins (limits, shell profile) and
  // for services (systemd-coredump keeps nothing).
  const coreDumpFiles: Array<[string, string, string]> = [
    [CORE_DUMPS_FILE, 'no core dumps (limits)', '# Managed by provision (role common): no core dumps (they can hold secrets).\n* hard core 0\n* soft core 0\n'],
    [COREDUMP_DROPIN, 'no core dumps (systemd-coredump)', '# Managed by provision (role common): no core dumps (they can hold secrets).\n[Coredump]\nStorage=none\nProcessSizeMax=0\n'],
    [CORE_DUMPS_PROFILE, 'no core dumps (login shells)', '# Managed by provision (role common): no core dumps (they can hold secrets).\nulimit -c 0\n'],
  ];
  for (const [dest, name, content] of coreDumpFiles) {
    tasks.push(
      v.disable_core_dumps
        ? copy(name, { dest, content, mode: '0644', make_parents: true })
        : file(`${name}: as the system sets them`, { path: dest, state: 'absent' }),
    );
  }

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

  const sysctls = sysctlSettings(v);
  if (Object.keys(sysctls).length) {
    tasks.push(
      copy('kernel hardening settings (sysctl.d)', { dest: SYSCTL_FILE, content: sysctlFileContent(sysctls), mode: '0644' }),
      command('kernel hardening settings are live (the keys this host may set)', { cmd: SYSCTL_APPLY, unless: sysctlLive(sysctls) }),
    );
  } else {
    tasks.push(file('no kernel hardening settings', { path: SYSCTL_FILE, state: 'absent' }));
  }

  const loginDefs: Array<[string, string]> = [
    ['PASS_MAX_DAYS', String(v.password_max_days)],
    ['PASS_MIN_DAYS', String(v.password_min_days)],
    ['SHA_CRYPT_MIN_ROUNDS', '5000'],
    ['SHA_CRYPT_MAX_ROUNDS', '50000'],
    ['UMASK', String(v.login_umask)],
  ];
  for (const [key, value] of loginDefs) {
    tasks.push(lineinfile(`login.defs: ${key} ${value}`, { path: '/etc/login.defs', regexp: `^#?\\s*${key}\\s`, line: `${key}\t${value}` }));
  }

  tasks.push(
    v.password_quality
      ? copy('password quality rules (pam_pwquality)', {
          dest: PWQUALITY_FILE,
          content: `# Managed by provision (role common): rules for any password set on this host.\nminlen = ${v.password_min_length}\nminclass = 3\n`,
          mode: '0644',
          make_parents: true,
        })
      : file('no password quality rules of ours', { path: PWQUALITY_FILE, state: 'absent' }),
  );

  const timeout = Number(v.shell_timeout);
  tasks.push(
    timeout > 0
      ? copy('idle interactive shells end', {
          dest: SHELL_TIMEOUT_FILE,
          // Not exported: it ends the login shell left open, not the scripts started from it.
          content: `# Managed by provision (role common): an idle interactive shell ends after ${timeout} s.\nTMOUT=${timeout}\n`,
          mode: '0644',
        })
      : file('no idle shell timeout', { path: SHELL_TIMEOUT_FILE, state: 'absent' }),
  );

  if (v.shm_noexec) {
    tasks.push(
      lineinfile('/dev/shm mounted nosuid, nodev, noexec (fstab)', { path: '/etc/fstab', regexp: '^\\S+\\s+/dev/shm\\s', line: SHM_FSTAB, create: true, mode: '0644' }),
      command('/dev/shm is mounted nosuid, nodev, noexec now', { cmd: `mount -o remount,${SHM_OPTIONS.join(',')} /dev/shm`, unless: SHM_MOUNTED_HARDENED }),
    );
  } else {
    tasks.push(lineinfile('/dev/shm as the system mounts it (fstab)', { path: '/etc/fstab', regexp: '^\\S+\\s+/dev/shm\\s', state: 'absent', create: true }));
  }

  if (v.proc_hidepid) {
    tasks.push(
      lineinfile('/proc mounted hidepid=invisible (fstab)', { path: '/etc/fstab', regexp: '^\\S+\\s+/proc\\s', line: PROC_FSTAB, create: true, mode: '0644' }),
      command('/proc is mounted hidepid=invisible now', { cmd: 'mount -o remount,hidepid=invisible /proc', unless: PROC_HIDEPID_MOUNTED }),
    );
  } else {
    tasks.push(lineinfile('/proc as the system mounts it (fstab)', { path: '/etc/fstab', regexp: '^\\S+\\s+/proc\\s', state: 'absent', create: true }));
  }

  if (v.aide) {
    tasks.push(
      copy('AIDE configuration (SHA-512)', { dest: AIDE_CONF, content: AIDE_CONF_CONTENT, mode: '0644', make_parents: true, validate: 'aide --config=%s --config-check' }),
      // Once: the baseline the daily check (dailyaidecheck.timer) compares the files with.
      command('AIDE baseline database', { cmd: 'aideinit --yes --force', creates: AIDE_DB, timeout: 1800 }),
    );
  }
  return tasks;
}

const SYSCTL_KEY = /^[a-z0-9_-]+(\.[a-z0-9_-]+)+$/;
const SYSCTL_VALUE = (v: unknown) => (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && /^[A-Za-z0-9_ .:-]+$/.test(v)) || v === null;
const onOff = (description: string) => bool().default(true).describe(description);

/** The hardening measures' vars (part of the common role's schema); which lynis test each answers is in docs/roles/common.md. */
export const hardeningVars = {
  login_banner: text((s) => !s.includes('\\'), 'a text without backslashes (getty expands them), or "" to leave /etc/issue alone', 'text')
    .default('Authorised access only. Activity on this system is monitored and logged.')
    .describe('Written to `/etc/issue` and `/etc/issue.net`; `""` leaves them alone; no backslashes (getty expands them).'),
  security_updates_on_converge: onOff('Install pending security updates on converge (what unattended-upgrades would install at its next daily run).'),
  disable_core_dumps: onOff('No core dumps (they can hold secrets): limits.d, systemd-coredump and login shells.'),
  disabled_kernel_modules: stringList(/^[a-z0-9_-]+$/, 'a list of kernel module names, like [dccp, sctp]', 'list of module names')
    .default(['dccp', 'sctp', 'rds', 'tipc', 'usb-storage', 'firewire-core'])
    .describe('Blacklisted and `install … /bin/false` in `/etc/modprobe.d/provision-disabled-modules.conf`; `[]` removes the file.'),
  sysctl_hardening: onOff("The role's kernel settings (`SYSCTL_HARDENING` in `src/roles/common/hardening.ts`), in sysctl.d and live where the host may set them."),
  sysctl_overrides: doc(
    z.record(z.string(), z.unknown().refine(SYSCTL_VALUE, { error: (iss) => `a number, a plain value or null (drops the key), got ${shown(iss.input)}` }), {
      error: 'a map of sysctl keys to values, like { kernel.sysrq: 176 }',
    }),
    { type: 'map of sysctl key → number, plain value or null' },
  )
    .default({})
    .describe('Merged over `sysctl_hardening`: `{ kernel.sysrq: 176 }` changes one, `{ net.ipv4.ip_forward: 1 }` adds one (a router), `{ kernel.yama.ptrace_scope: null }` drops one.'),
  password_max_days: wholeNumber(0, 99999, 'a whole number of days from 0 to 99999')
    .default(365)
    .describe('`/etc/login.defs` PASS_MAX_DAYS for local accounts created later (admin users have no password).'),
  password_min_days: wholeNumber(0, 99999, 'a whole number of days from 0 to 99999').default(1).describe('`/etc/login.defs` PASS_MIN_DAYS.'),
  login_umask: text(/^0?[0-7]{3}$/, (v) => `an octal umask like "027", got ${shown(v)}`, 'octal umask').default('027').describe('login.defs `UMASK`: new home directories 0750, console logins 027.'),
  password_quality: onOff('pam_pwquality rules for any password set on the host (`minclass = 3`; admin users have none).'),
  password_min_length: wholeNumber(8, 128).default(14).describe('pam_pwquality minimum password length.'),
  shell_timeout: wholeNumber(0, undefined, 'a number of seconds (0: no timeout)').default(900).describe('Seconds an interactive login shell may stay idle (TMOUT); `0`: no limit.'),
  pam_tmpdir: onOff('A private `$TMPDIR` per login session (`/tmp/user/UID`, 0700).'),
  shm_noexec: onOff('`/dev/shm` mounted `nosuid,nodev,noexec` (fstab, and remounted now).'),
  proc_hidepid: onOff('`/proc` mounted `hidepid=invisible`: users see only their own processes (fstab, and remounted now).'),
  aide: onOff("AIDE file integrity: a baseline on the first run, Debian's daily check after."),
  rootkit_check: onOff('chkrootkit and its daily timer (reports what changed since the day before).'),
};

/** The keys of sysctl_overrides (a record's keys cannot carry their own message in the schema). */
export const sysctlKeyRule: VarRule<{ sysctl_overrides: unknown }> = {
  says: '`sysctl_overrides` keys are sysctl keys (dotted, like `net.ipv4.conf.all.rp_filter`).',
  check: (v) => Object.keys(asMap(v.sysctl_overrides)).flatMap((k) => problemIf(!SYSCTL_KEY.test(k), 'sysctl_overrides', `"${k}" is not a sysctl key (dotted, like net.ipv4.conf.all.rp_filter)`)),
};

function asMap(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function list(v: unknown): string[] {
  return Array.isArray(v) ? (v as string[]) : [];
}
