import { existsSync } from 'node:fs';
import { run } from './exec.ts';
import { LabError } from './errors.ts';

/** Binaries the lab runs on the machine, and the Debian package providing each. */
const REQUIRED: ReadonlyArray<readonly [string, string]> = [
  ['debootstrap', 'debootstrap'],
  ['systemd-nspawn', 'systemd-container'],
  ['tinyproxy', 'tinyproxy'],
  ['pebble', 'pebble'],
  ['pebble-challtestsrv', 'pebble'],
  ['ip', 'iproute2'],
  ['iptables', 'iptables'],
  ['ssh', 'openssh-client'],
  ['ssh-keygen', 'openssh-client'],
  ['curl', 'curl'],
  ['openssl', 'openssl'],
  // Not used by the lab itself: tests scan the hosts from the client namespace with it.
  ['nmap', 'nmap'],
  // The edge test's bounded capture on the lab bridge (no plaintext between load balancer and web server).
  ['tcpdump', 'tcpdump'],
];

const SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export function which(bin: string): string | undefined {
  for (const dir of SEARCH_PATH) {
    const p = `${dir}/${bin}`;
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Installs whatever the lab needs and the machine lacks; `apt-get update` only if a first try fails. */
export async function ensureDependencies(log: (msg: string) => void): Promise<void> {
  const missing = [...new Set(REQUIRED.filter(([bin]) => !which(bin)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  log(`installing lab dependencies: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const args = ['install', '-y', '--no-install-recommends', ...missing];
  const first = await run('apt-get', args, { env, allowFail: true });
  if (first.code !== 0) {
    await run('apt-get', ['update'], { env });
    await run('apt-get', args, { env });
  }
  const still = REQUIRED.filter(([bin]) => !which(bin)).map(([bin]) => bin);
  if (still.length) throw new LabError(`still missing after apt-get install: ${still.join(', ')}`);
}
