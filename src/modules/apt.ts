import { z } from 'zod';
import { quote } from '../util/quote.js';
import type { Change, Command, ModuleDef } from './types.js';

const params = z.strictObject({
  packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+~:-]+)?$/, 'a Debian package name, optionally =version')).min(1),
  state: z.enum(['present', 'absent', 'latest']).default('present'),
  /** Refresh the package lists before installing when they are older than cache_valid_time. */
  update_cache: z.boolean().default(true),
  cache_valid_time: z.number().int().min(0).default(3600),
  install_recommends: z.boolean().default(false),
  /** How long to wait for another apt/dpkg to release its lock before failing. */
  lock_timeout: z.number().int().min(0).default(120),
  purge: z.boolean().default(false),
});
export type AptParams = z.input<typeof params>;

function split(spec: string): { name: string; version?: string } {
  const [name, version] = spec.split('=');
  return { name: name!, version };
}

const APT_ENV = 'DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a';
const DPKG_CONFOPTS = '-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold';

/**
 * Bring an interrupted dpkg back to a consistent state. `dpkg --configure -a` finishes what was
 * unpacked; but a package whose unpack or maintainer script was killed is flagged half-installed or
 * reinstall-required ("very bad inconsistent state"), which dpkg refuses to configure: apt puts its
 * files back first (--reinstall), then dpkg configures the rest. dpkg itself does not wait for its
 * lock (apt does, with DPkg::Lock::Timeout), so the script waits for it up to `lockTimeout` seconds.
 */
function recoverDpkgCommand(lockTimeout: number): Command {
  const lock = `-o DPkg::Lock::Timeout=${lockTimeout}`;
  const script = [
    `end=$(($(date +%s) + ${lockTimeout}))`,
    'while :; do',
    `  out=$(${APT_ENV} dpkg --configure -a --force-confdef --force-confold 2>&1) && { printf '%s\n' "$out"; exit 0; }`,
    '  case $out in *"lock was locked"*|*"unable to lock"*|*"unable to acquire"*) ;; *) break ;; esac',
    '  [ "$(date +%s)" -lt "$end" ] || { printf \'%s\n\' "$out" >&2; exit 1; }',
    '  sleep 2',
    'done',
    "printf '%s\n' \"$out\" >&2",
    "broken=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' | awk '$2 ~ /^.H/ || $2 ~ /R$/ { print $1 }')",
    '[ -n "$broken" ] || exit 1',
    'set -e',
    `${APT_ENV} apt-get install -y -q --reinstall --no-install-recommends ${lock} ${DPKG_CONFOPTS} $broken`,
    `${APT_ENV} dpkg --configure -a --force-confdef --force-confold`,
  ].join('\n');
  return {
    kind: 'shell',
    cmd: `sh -c ${quote(script)}`,
    describe: `recover interrupted dpkg (dpkg --configure -a, waiting up to ${lockTimeout}s for the dpkg lock; reinstall what it cannot configure)`,
  };
}

export const aptModule: ModuleDef<z.output<typeof params>> = {
  name: 'apt',
  schema: params,
  // Downloads and maintainer scripts of a large install take minutes on a slow mirror.
  commandTimeoutMs: 1_800_000,
  probes(p) {
    if (p.state !== 'latest') return [];
    const names = p.packages.map((s) => split(s).name);
    return [{ key: `apt:policy:${names.join(',')}`, script: `LC_ALL=C apt-cache policy ${names.map(quote).join(' ')}` }];
  },
  async plan(p, ctx) {
    const { facts, predicted } = ctx;
    const installed = (name: string) =>
      predicted.packagesRemoved.has(name) ? undefined : predicted.packagesInstalled.has(name) ? '(this run)' : facts.packages.get(name)?.version;
    const changes: Change[] = [];
    const toInstall: string[] = [];
    const toRemove: string[] = [];

    let candidates = new Map<string, string>();
    if (p.state === 'latest') {
      const out = ctx.results.get(`apt:policy:${p.packages.map((s) => split(s).name).join(',')}`)?.stdout ?? '';
      let current = '';
      for (const line of out.split('\n')) {
        const pkg = /^(\S+):$/.exec(line);
        if (pkg) current = pkg[1]!;
        const cand = /^\s+Candidate:\s+(\S+)/.exec(line);
        if (cand && current) candidates.set(current, cand[1]!);
      }
    }

    for (const spec of p.packages) {
      const { name, version } = split(spec);
      const have = installed(name);
      if (p.state === 'absent') {
        if (have !== undefined) {
          toRemove.push(name);
          changes.push({ kind: 'package', target: name, action: `remove (installed ${have})` });
        }
      } else if (have === undefined) {
        toInstall.push(spec);
        changes.push({ kind: 'package', target: name, action: `install${version ? ' ' + version : ''}` });
      } else if (version && have !== version && have !== '(this run)') {
        toInstall.push(spec);
        changes.push({ kind: 'package', target: name, action: `change version ${have} → ${version}` });
      } else if (p.state === 'latest') {
        const cand = candidates.get(name);
        if (cand && cand !== '(none)' && cand !== have && have !== '(this run)') {
          toInstall.push(name);
          changes.push({ kind: 'package', target: name, action: `upgrade ${have} → ${cand}` });
        }
      }
    }
    if (changes.length === 0) return { changes: [], commands: [] };

    const commands: Command[] = [];
    const lock = `-o DPkg::Lock::Timeout=${p.lock_timeout}`;
    if (facts.dpkgInterrupted && !predicted.anyChange) {
      // A package install cut off earlier (dropped connection, killed run) leaves dpkg half-configured.
      changes.unshift({ kind: 'package', target: 'dpkg', action: 'recover interrupted dpkg (dpkg --configure -a)' });
      commands.push(recoverDpkgCommand(p.lock_timeout));
    }
    if (toInstall.length) {
      const stale = !predicted.aptCacheFresh && facts.now - facts.aptUpdatedAt > p.cache_valid_time;
      if (p.update_cache && stale) commands.push({ kind: 'shell', cmd: `${APT_ENV} apt-get update -q ${lock}`, describe: 'apt-get update' });
      commands.push({
        kind: 'shell',
        cmd:
          `${APT_ENV} apt-get install -y -q ${lock} -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ` +
          `${p.install_recommends ? '' : '--no-install-recommends '}${toInstall.map(quote).join(' ')}`,
        // A failure then reads "apt-get install X (waits up to Ns for the dpkg lock) exited 100: E: …lock…".
        describe: `apt-get install ${toInstall.join(' ')} (waits up to ${p.lock_timeout}s for the dpkg lock)`,
      });
    }
    if (toRemove.length) {
      commands.push({
        kind: 'shell',
        cmd: `${APT_ENV} apt-get ${p.purge ? 'purge' : 'remove'} -y -q ${lock} ${toRemove.map(quote).join(' ')}`,
        describe: `apt-get ${p.purge ? 'purge' : 'remove'} ${toRemove.join(' ')} (waits up to ${p.lock_timeout}s for the dpkg lock)`,
      });
    }
    // A dry run asks apt what the install would bring (dependencies included), so later tasks
    // see those packages as installed, exactly as they will be in the real run.
    let simulated: string[] = [];
    if (ctx.check && toInstall.length) {
      const sim = await ctx.run(`LC_ALL=C apt-get install -s -q --no-install-recommends ${toInstall.map(quote).join(' ')} 2>/dev/null`);
      simulated = [...sim.stdout.matchAll(/^Inst (\S+)/gm)].map((m) => m[1]!.split(':')[0]!);
    }
    return {
      changes,
      commands,
      predict(state) {
        if (toInstall.length && p.update_cache) state.aptCacheFresh = true;
        for (const name of simulated) state.packagesInstalled.add(name);
        for (const s of toInstall) {
          state.packagesInstalled.add(split(s).name);
          state.packagesRemoved.delete(split(s).name);
        }
        for (const n of toRemove) {
          state.packagesRemoved.add(n);
          state.packagesInstalled.delete(n);
        }
      },
    };
  },
};
