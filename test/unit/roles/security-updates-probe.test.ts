/**
 * The common role's "security updates pending" probe (SECURITY_UPDATES_PENDING) against the real apt
 * and dpkg of this machine, on an apt root of its own (APT_CONFIG, DPKG_ADMINDIR: its sources, lists,
 * status): the answer is `apt-get -s upgrade`'s in every case, and that resolution of the whole
 * archive (0.3-0.6 s on a lab host) runs only when a security index has a newer version of an
 * installed package.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { SECURITY_UPDATES_PENDING } from '../../../src/roles/common/hardening.ts';

const hasApt = existsSync('/usr/bin/apt-get') && existsSync('/usr/lib/apt/apt-helper') && existsSync('/usr/bin/dpkg');
const base = mkdtempSync(path.join(tmpdir(), 'provision-security-probe-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** The command the probe used to run alone: the reference answer. */
const EXACT = "LC_ALL=C apt-get -s upgrade 2>/dev/null | grep '^Inst ' | grep -q -- '-security'";

interface Case {
  installed: Record<string, string>;
  main?: Record<string, string>;
  /** Absent: no security suite in the sources; null: in the sources, never fetched. */
  security?: Record<string, string> | null;
  gzip?: boolean;
  hold?: string[];
}

const stanzas = (pkgs: Record<string, string>) =>
  Object.entries(pkgs)
    .map(([p, v]) => `Package: ${p}\nVersion: ${v}\nArchitecture: amd64\nPriority: optional\nSection: misc\nMaintainer: t <t@example.invalid>\nFilename: pool/${p}_${v}.deb\nSize: 1\nDescription: x\n`)
    .join('\n');
const release = (label: string, suite: string, codename: string) =>
  `Origin: Debian\nLabel: ${label}\nSuite: ${suite}\nCodename: ${codename}\nArchitectures: amd64\nComponents: main\nDate: Sat, 01 Nov 2026 00:00:00 UTC\n`;

let n = 0;
/** An apt root for one case, and a PATH whose apt-get logs its arguments before running the real one. */
function aptRoot(c: Case): { env: NodeJS.ProcessEnv; calls: () => string[] } {
  const r = path.join(base, String(n++));
  for (const d of ['etc/apt/apt.conf.d', 'etc/apt/preferences.d', 'etc/apt/sources.list.d', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/partial', 'var/lib/dpkg', 'bin'])
    mkdirSync(path.join(r, d), { recursive: true });
  writeFileSync(path.join(r, 'apt.conf'), `Dir "${r}/";\nDir::State::status "${r}/var/lib/dpkg/status";\nAPT::Architecture "amd64";\nAPT::Architectures { "amd64"; };\nDebug::NoLocking "true";\n`);
  const sources = ['deb [trusted=yes] http://example.invalid/debian bookworm main'];
  if (c.security !== undefined) sources.push('deb [trusted=yes] http://example.invalid/debian-security bookworm-security main');
  writeFileSync(path.join(r, 'etc/apt/sources.list'), `${sources.join('\n')}\n`);
  const lists = path.join(r, 'var/lib/apt/lists');
  writeFileSync(path.join(lists, 'example.invalid_debian_dists_bookworm_Release'), release('Debian', 'stable', 'bookworm'));
  writeFileSync(path.join(lists, 'example.invalid_debian_dists_bookworm_main_binary-amd64_Packages'), stanzas(c.main ?? {}));
  if (c.security) {
    writeFileSync(path.join(lists, 'example.invalid_debian-security_dists_bookworm-security_Release'), release('Debian-Security', 'stable-security', 'bookworm-security'));
    const text = stanzas(c.security);
    const file = path.join(lists, 'example.invalid_debian-security_dists_bookworm-security_main_binary-amd64_Packages');
    if (c.gzip) writeFileSync(`${file}.gz`, gzipSync(text));
    else writeFileSync(file, text);
  }
  writeFileSync(
    path.join(r, 'var/lib/dpkg/status'),
    Object.entries(c.installed)
      .map(([p, v]) => `Package: ${p}\nStatus: ${c.hold?.includes(p) ? 'hold' : 'install'} ok installed\nPriority: optional\nSection: misc\nMaintainer: t <t@example.invalid>\nArchitecture: amd64\nVersion: ${v}\nDescription: x\n`)
      .join('\n'),
  );
  const log = path.join(r, 'apt-get.log');
  writeFileSync(path.join(r, 'bin/apt-get'), `#!/bin/sh\necho "$*" >> '${log}'\nexec /usr/bin/apt-get "$@"\n`);
  chmodSync(path.join(r, 'bin/apt-get'), 0o755);
  return {
    env: { ...process.env, APT_CONFIG: path.join(r, 'apt.conf'), DPKG_ADMINDIR: path.join(r, 'var/lib/dpkg'), PATH: `${path.join(r, 'bin')}:${process.env.PATH}` },
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []),
  };
}

const run = (script: string, env: NodeJS.ProcessEnv) => spawnSync('sh', ['-c', script], { env, encoding: 'utf8', timeout: 60_000 }).status;

describe.skipIf(!hasApt)('security updates pending: apt-get -s upgrade only when it can say yes', () => {
  it.each<[string, Case, 0 | 1, boolean]>([
    ['a security version newer than the installed one', { installed: { foo: '1.0-1', bar: '2.0-1' }, main: { foo: '1.0-1', bar: '2.0-1' }, security: { foo: '1.0-2' } }, 0, true],
    ['the same, its index compressed (read through apt-helper)', { installed: { foo: '1.0-1' }, main: { foo: '1.0-1' }, security: { foo: '1.0-2' }, gzip: true }, 0, true],
    ['up to date: security at the installed version, main newer (a point release)', { installed: { foo: '1.0-3' }, main: { foo: '1.0-3' }, security: { foo: '1.0-2' } }, 1, false],
    ['an update from main only, none from security', { installed: { foo: '1.0-1', bar: '2.0-1' }, main: { foo: '1.0-5', bar: '2.0-1' }, security: { bar: '2.0-1' } }, 1, false],
    ['a newer security version of a package on hold: kept back, as apt decides', { installed: { foo: '1.0-1' }, main: { foo: '1.0-1' }, security: { foo: '1.0-2' }, hold: ['foo'] }, 1, true],
    ['a security suite whose index was never fetched (a fresh host)', { installed: { foo: '1.0-1' }, main: { foo: '1.0-1' }, security: null }, 0, false],
    ['no security suite in the sources', { installed: { foo: '1.0-1' }, main: { foo: '1.0-2' } }, 1, false],
  ])('%s', (_name, c, want, resolves) => {
    const reference = aptRoot(c);
    expect(run(EXACT, reference.env), 'apt-get -s upgrade itself').toBe(c.security === null ? 1 : want); // never fetched: apt sees nothing yet
    const probe = aptRoot(c);
    expect(run(SECURITY_UPDATES_PENDING, probe.env)).toBe(want);
    expect(probe.calls().some((a) => /(^| )-s upgrade$/.test(a)), `apt-get calls: ${probe.calls().join(' | ')}`).toBe(resolves);
  });

  it('an index apt-helper cannot read leaves the answer to apt', () => {
    const c = aptRoot({ installed: { foo: '1.0-1' }, main: { foo: '1.0-1' }, security: { foo: '1.0-1' } });
    const lists = path.join(c.env.APT_CONFIG!.replace(/apt\.conf$/, ''), 'var/lib/apt/lists');
    writeFileSync(path.join(lists, 'example.invalid_debian-security_dists_bookworm-security_main_binary-amd64_Packages.xz'), 'not xz at all');
    expect(run(SECURITY_UPDATES_PENDING, c.env)).toBe(1);
    expect(c.calls().some((a) => /-s upgrade$/.test(a))).toBe(true);
  });
});
