import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, rmSync, renameSync, mkdirSync, readdirSync, unlinkSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.ts';
import { LabError } from './errors.ts';
import { BASE_IMAGE, CACHE_ROOT } from './layout.ts';
import { imageSources, type Mirrors } from './mirror.ts';

const SUITE = 'bookworm';
/** What every lab host has; roles install the rest themselves, so nothing else is added. */
export const BASE_PACKAGES = [
  'systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'python3', 'sudo',
  'iproute2', 'ca-certificates', 'procps', 'gnupg',
];
/** Bump when the post-processing below changes, so caches built by older code are rebuilt. */
const FORMAT = 1;
const STAMP_FILE = '.provision-lab-stamp';

export function imageStamp(m: Mirrors): string {
  const spec = JSON.stringify({ FORMAT, SUITE, variant: 'minbase', packages: BASE_PACKAGES, mirrors: m });
  return createHash('sha256').update(spec).digest('hex').slice(0, 16);
}

function currentStamp(): string | undefined {
  const f = join(BASE_IMAGE, STAMP_FILE);
  return existsSync(f) ? readFileSync(f, 'utf8').trim() : undefined;
}

/** An overlay still using the cache as its lower layer forbids replacing it. */
function cacheInUse(): boolean {
  return readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.includes(`lowerdir=${BASE_IMAGE}`));
}

/**
 * Returns the cached base image, building it first when missing or built from a
 * different spec. The build goes to a temporary directory renamed into place only
 * when complete, so a half-built image is never used.
 */
export async function ensureBaseImage(m: Mirrors, log: (msg: string) => void): Promise<{ path: string; built: boolean; seconds: number }> {
  const stamp = imageStamp(m);
  if (currentStamp() === stamp) return { path: BASE_IMAGE, built: false, seconds: 0 };
  if (existsSync(BASE_IMAGE) && cacheInUse()) {
    throw new LabError(`base image ${BASE_IMAGE} is outdated but in use: run "provision lab down" for every instance first`);
  }
  const started = Date.now();
  mkdirSync(CACHE_ROOT, { recursive: true });
  for (const f of readdirSync(CACHE_ROOT)) {
    if (f.startsWith('base-bookworm.tmp-') || f.startsWith('base-bookworm.old-')) rmSync(join(CACHE_ROOT, f), { recursive: true, force: true });
  }
  const tmp = `${BASE_IMAGE}.tmp-${process.pid}`;
  const logFile = join(CACHE_ROOT, 'debootstrap.log');
  log(`building base image (debootstrap ${SUITE} from ${m.debian}); log: ${logFile}`);
  const res = await run(
    'debootstrap',
    ['--variant=minbase', `--include=${BASE_PACKAGES.join(',')}`, SUITE, tmp, m.debian],
    { allowFail: true },
  );
  writeFileSync(logFile, res.stdout + res.stderr);
  if (res.code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new LabError(`debootstrap failed (exit ${res.code}); see ${logFile}`);
  }
  finishImage(tmp, m);
  writeFileSync(join(tmp, STAMP_FILE), stamp + '\n');
  if (existsSync(BASE_IMAGE)) {
    const old = `${BASE_IMAGE}.old-${process.pid}`;
    renameSync(BASE_IMAGE, old);
    renameSync(tmp, BASE_IMAGE);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, BASE_IMAGE);
  }
  return { path: BASE_IMAGE, built: true, seconds: (Date.now() - started) / 1000 };
}

function removeIfFile(p: string): void {
  try {
    if (lstatSync(p)) unlinkSync(p);
  } catch {
    /* absent */
  }
}

/** Makes the debootstrap output a template: nothing host-specific, apt pointed at the machine's mirrors. */
function finishImage(root: string, m: Mirrors): void {
  const sshDir = join(root, 'etc/ssh');
  for (const f of readdirSync(sshDir)) if (f.startsWith('ssh_host_')) unlinkSync(join(sshDir, f));
  removeIfFile(join(root, 'etc/machine-id'));
  removeIfFile(join(root, 'var/lib/dbus/machine-id'));
  removeIfFile(join(root, 'etc/apt/sources.list'));
  writeFileSync(join(root, 'etc/apt/sources.list.d/debian.sources'), imageSources(m));
  // debootstrap copies the machine's resolver; lab hosts need none (apt goes through the proxy).
  removeIfFile(join(root, 'etc/resolv.conf'));
  writeFileSync(join(root, 'etc/resolv.conf'), '# provision lab: no resolver; apt uses the lab proxy\n');
  writeFileSync(join(root, 'etc/hostname'), 'localhost\n');
  const archives = join(root, 'var/cache/apt/archives');
  for (const f of readdirSync(archives)) if (f.endsWith('.deb')) unlinkSync(join(archives, f));
}
