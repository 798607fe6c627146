import { createHash, randomBytes } from 'node:crypto';
import { PENDING_HANDLERS_FILE } from '../host-paths.js';
import { ModuleError } from '../util/errors.js';
import { CommandTimeoutError, type Connection } from '../transport/index.js';
import { batchScript, cutOff, parseBatchOutput, runProbes, type ProbeResult, type RawProbe } from './batch.js';
import { rememberedReadSection, splitRemembered, type RememberedRead } from './remembered.js';
import { compareText } from '../util/compare-text.js';

export interface PackageFact {
  version: string;
}

export interface ServiceFact {
  /** systemd: active, inactive, failed, activating…; sysv: running/stopped as active/inactive. */
  active: string;
  /** Not read with the facts (too slow to list): "unknown"; the service module reads it per unit. */
  enabled: string;
}

export interface Facts {
  hostname: string;
  os: { id: string; family: 'debian' | 'ubuntu' | 'other'; version: string; codename: string; pretty: string };
  arch: string;
  init: 'systemd' | 'sysv';
  /** systemd-detect-virt: "none" on metal, "systemd-nspawn" in the lab, "kvm" in Vagrant… */
  virtualization: string;
  packages: Map<string, PackageFact>;
  services: Map<string, ServiceFact>;
  users: Map<string, { uid: number; gid: number; home: string; shell: string }>;
  groups: Map<string, { gid: number; members: string[] }>;
  ufw: { installed: boolean; active: boolean; raw: string };
  ipv4: string[];
  /** Epoch seconds of the last successful apt update (0 when never). */
  aptUpdatedAt: number;
  /** dpkg was interrupted (a package install cut off): must be recovered with dpkg --configure -a. */
  dpkgInterrupted: boolean;
  /** Handlers notified in an earlier run that did not get to run them. */
  pendingHandlers: string[];
  /** The host's clock (epoch seconds) when the facts were read. */
  now: number;
}

/**
 * Every fact in one script: one round trip per host. Each command started on the host costs it a
 * few ms of CPU (on a fleet of containers sharing cores, the bulk of a no-change run), so the script
 * uses the shell's builtins where they do and leaves the sorting and column-picking to the controller.
 */
export const FACT_PROBES: readonly RawProbe[] = [
  {
    key: 'os',
    script:
      'while IFS= read -r l || [ -n "$l" ]; do printf \'%s\\n\' "$l"; done < /etc/os-release; ' +
      // The kernel's own files through the shell's read (uname only where the kernel has no kernel.arch).
      ' read -r h < /proc/sys/kernel/hostname; echo "HOSTNAME=$h";' +
      ' if [ -r /proc/sys/kernel/arch ]; then read -r a < /proc/sys/kernel/arch; else a=$(uname -m); fi; echo "ARCH=$a"; echo "NOW=$(date +%s)"',
  },
  { key: 'init', script: '[ -d /run/systemd/system ] && echo systemd || echo sysv' },
  // systemd records the container it runs in; systemd-detect-virt (tens of ms) only where it did not.
  { key: 'virt', script: 'if [ -s /run/systemd/container ]; then read -r v < /run/systemd/container; echo "$v"; else systemd-detect-virt 2>/dev/null || echo none; fi' },
  { key: 'packages', script: "dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\t${Version}\\n' 2>/dev/null" },
  {
    // Active states only: `systemctl list-unit-files` costs most of a second, and the service module
    // reads the enablement of the units it manages in its own (batched) probe.
    key: 'services',
    script:
      'if [ -d /run/systemd/system ]; then systemctl list-units --type=service --all --no-legend --no-pager --plain 2>/dev/null;' +
      ' else for s in /etc/init.d/*; do [ -x "$s" ] || continue; n=${s##*/}; if "$s" status >/dev/null 2>&1; then echo "U $n.service active running"; else echo "U $n.service inactive dead"; fi; done; fi',
  },
  { key: 'users', script: 'getent passwd' },
  { key: 'groups', script: 'getent group' },
  {
    // ufw's own settings files, not `ufw status`: that starts Python (about a second on a busy host,
    // the costliest fact by far); "active" is the ENABLED setting ufw applies at boot and on `ufw enable`.
    key: 'ufw',
    script:
      "if command -v ufw >/dev/null 2>&1; then echo installed; grep -hE '^(ENABLED|LOGLEVEL|DEFAULT_(INPUT|OUTPUT|FORWARD)_POLICY)=' /etc/ufw/ufw.conf /etc/default/ufw 2>/dev/null;" +
      ' else echo missing; fi',
  },
  { key: 'ipv4', script: 'ip -4 -o addr show 2>/dev/null' },
  { key: 'apt', script: 'stat -c %Y /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists/partial 2>/dev/null' },
  // Journal entries dpkg has not yet folded into its status; the package states themselves come with
  // 'packages' (what `dpkg --audit` would read again).
  { key: 'dpkg', script: 'for f in /var/lib/dpkg/updates/*; do [ -e "$f" ] && echo "$f"; break; done' },
  { key: 'pending', script: `if [ -f ${PENDING_HANDLERS_FILE} ]; then cat ${PENDING_HANDLERS_FILE}; fi` },
];

function kv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return out;
}

export function parseFacts(raw: ReadonlyMap<string, ProbeResult>): Facts {
  const get = (k: string) => raw.get(k)?.stdout ?? '';
  const os = kv(get('os'));
  const id = os.ID ?? 'unknown';
  const like = os.ID_LIKE ?? '';
  const family = id === 'ubuntu' ? 'ubuntu' : id === 'debian' || like.includes('debian') ? 'debian' : 'other';

  const packages = new Map<string, PackageFact>();
  let dpkgHalfDone = false;
  for (const line of get('packages').split('\n')) {
    const [name, status, version] = line.split('\t');
    // "ii" = desired install, installed; anything else (rc, iU, iF…) is not a usable install.
    if (name && status?.trim().startsWith('ii')) packages.set(name.split(':')[0]!, { version: version ?? '' });
    // What `dpkg --audit` reports: half-installed, unpacked, half-configured, triggers awaited or
    // pending (status H U F W t), or flagged reinstall-required (R).
    if (status && (/^.[HUFWt]/.test(status) || status[2] === 'R')) dpkgHalfDone = true;
  }

  const services = new Map<string, ServiceFact>();
  for (const line of get('services').split('\n')) {
    // `systemctl list-units` columns (UNIT LOAD ACTIVE SUB …) become "U unit active sub" as the sysv branch prints.
    const cols = line.trim().split(/\s+/);
    const f = cols[0] === 'U' || cols[0] === 'F' || !cols[0] ? cols : ['U', cols[0], cols[2] ?? '', cols[3] ?? ''];
    if (f[0] === 'U' && f[1]) {
      const prev = services.get(f[1]);
      services.set(f[1], { active: f[2] === 'not-found' ? 'not-found' : (f[3] ?? 'unknown'), enabled: prev?.enabled ?? 'unknown' });
    } else if (f[0] === 'F' && f[1]) {
      const prev = services.get(f[1]);
      services.set(f[1], { active: prev?.active ?? 'inactive', enabled: f[2] ?? 'unknown' });
    }
  }

  // getent's passwd (7 fields) and group (4 fields) databases, by name.
  const records = (text: string, fields: number) => text.split('\n').map((l) => l.split(':')).filter((f) => f.length >= fields);
  const users = new Map(records(get('users'), 7).map((f) => [f[0]!, { uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! }]));
  const groups = new Map(records(get('groups'), 4).map((f) => [f[0]!, { gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) }]));

  const ufwText = get('ufw');
  const ufwInstalled = ufwText.startsWith('installed');
  return {
    hostname: os.HOSTNAME ?? '',
    os: { id, family, version: os.VERSION_ID ?? '', codename: os.VERSION_CODENAME ?? '', pretty: os.PRETTY_NAME ?? id },
    arch: os.ARCH ?? '',
    init: get('init').trim() === 'systemd' ? 'systemd' : 'sysv',
    virtualization: get('virt').trim().split('\n')[0] || 'none',
    packages,
    services,
    users,
    groups,
    ufw: { installed: ufwInstalled, active: /^ENABLED=("?)yes\1\s*$/m.test(ufwText), raw: ufwText.replace(/^installed\n?/, '') },
    ipv4: get('ipv4').split('\n').map((l) => l.trim().split(/\s+/)[3] ?? '').filter((a) => a.includes('/')),
    aptUpdatedAt: Math.max(0, ...get('apt').split('\n').map(Number).filter(Number.isFinite)),
    dpkgInterrupted: dpkgHalfDone || get('dpkg').trim().length > 0,
    pendingHandlers: get('pending').split('\n').map((s) => s.trim()).filter(Boolean),
    now: Number(os.NOW) || Math.floor(Date.now() / 1000),
  };
}

/** The facts from the results of FACT_PROBES; a host whose os read failed has no facts. */
export function factsFromResults(raw: ReadonlyMap<string, ProbeResult>): Facts {
  const os = raw.get('os');
  if (!os || os.code !== 0) throw new ModuleError(`gathering facts failed: ${os?.stdout.trim() || 'no output'}`);
  return parseFacts(raw);
}

/** Every fact in one round trip. */
export async function gatherFacts(conn: Connection): Promise<Facts> {
  return factsFromResults(await runProbes(conn, FACT_PROBES, true));
}

/**
 * Every fact and, in the same round trip, the state read the host kept from the last run
 * (remembered.ts; `file`), for the run's first read to use when it is the same script. The kept
 * read runs after the facts: when the bound runs out in it, the facts stand and the run's first read
 * is made again under a bound of its own (runProbes).
 */
export async function gatherFactsRemembering(conn: Connection, file: string): Promise<{ facts: Facts; remembered?: RememberedRead }> {
  const nonce = randomBytes(8).toString('hex');
  const script = `${batchScript(FACT_PROBES, nonce)}\n${rememberedReadSection(file)}\n`;
  let stdout: string;
  let stderr: string;
  let timeout: CommandTimeoutError | undefined;
  try {
    ({ stdout, stderr } = await conn.exec('sh -s', { stdin: script, become: true, timeoutMs: conn.probeTimeoutMs }));
  } catch (err) {
    if (!(err instanceof CommandTimeoutError)) throw err;
    ({ stdout, stderr } = err);
    timeout = err;
  }
  const split = splitRemembered(stdout, stderr, nonce, timeout);
  const facts = parseBatchOutput(FACT_PROBES, nonce, split.facts, stderr);
  // Cut off in the facts themselves: what a fact read of its own says (the probe that hung).
  if (timeout && !split.remembered) throw cutOff(timeout, FACT_PROBES, nonce, new Map());
  return { facts: factsFromResults(facts), remembered: split.remembered };
}

/** Plain-object form of the facts, for `provision facts` and plan fingerprints. */
export function factsToJSON(f: Facts): Record<string, unknown> {
  return {
    ...f,
    packages: Object.fromEntries([...f.packages].sort(([a], [b]) => compareText(a, b))),
    services: Object.fromEntries([...f.services].sort(([a], [b]) => compareText(a, b))),
    users: Object.fromEntries(f.users),
    groups: Object.fromEntries(f.groups),
  };
}

/** Facts that describe the host's state (not the clock): a change in these is drift. */
export function factsFingerprint(f: Facts): string {
  const { now: _now, aptUpdatedAt: _apt, services: _s, ...rest } = factsToJSON(f) as Facts & Record<string, unknown>;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16);
}
