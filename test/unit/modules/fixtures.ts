import { createHash } from 'node:crypto';
import type { Facts, ProbeResult } from '../../../src/facts/index.js';
import type { Host } from '../../../src/inventory/index.js';
import { fileProbeKey } from '../../../src/modules/lib/file-state.js';
import { emptyPredictedState, type PredictedState } from '../../../src/modules/index.js';

/** The host's clock in every case: fixed, so cache-age decisions are reproducible. */
export const NOW = 1_800_000_000;

/** A Debian 12 web host as the batched fact script reports it. */
export function debianFacts(): Facts {
  return {
    hostname: 'web-01',
    os: { id: 'debian', family: 'debian', version: '12', codename: 'bookworm', pretty: 'Debian GNU/Linux 12 (bookworm)' },
    arch: 'x86_64',
    init: 'systemd',
    virtualization: 'systemd-nspawn',
    packages: new Map([
      ['openssh-server', { version: '1:9.2p1-2+deb12u3' }],
      ['nginx', { version: '1.22.1-9' }],
      ['curl', { version: '7.88.1-10+deb12u5' }],
    ]),
    services: new Map([
      ['ssh.service', { active: 'running', enabled: 'enabled' }],
      ['nginx.service', { active: 'running', enabled: 'enabled' }],
    ]),
    users: new Map([
      ['root', { uid: 0, gid: 0, home: '/root', shell: '/bin/bash' }],
      ['www-data', { uid: 33, gid: 33, home: '/var/www', shell: '/usr/sbin/nologin' }],
      ['deploy', { uid: 1000, gid: 1000, home: '/home/deploy', shell: '/bin/bash' }],
    ]),
    groups: new Map([
      ['root', { gid: 0, members: [] }],
      ['sudo', { gid: 27, members: ['deploy'] }],
      ['www-data', { gid: 33, members: [] }],
      ['deploy', { gid: 1000, members: [] }],
    ]),
    ufw: { installed: false, active: false, raw: '' },
    ipv4: ['127.0.0.1/8', '10.77.0.11/24'],
    aptUpdatedAt: NOW - 600,
    dpkgInterrupted: false,
    pendingHandlers: [],
    now: NOW,
  };
}

export function testHost(vars: Record<string, unknown> = {}): Host {
  return {
    name: 'web-01',
    address: '10.77.0.11',
    groups: ['all', 'web'],
    vars: { app_port: 8080, ...vars },
    connection: { user: 'root', port: 22, knownHosts: '/dev/null', acceptNewHostKeys: false, become: false, becomeUser: 'root', connectTimeoutMs: 10_000 },
  };
}

/** Facts in a case file: plain JSON, maps as objects; merged over the Debian fixture. */
export function factsFrom(partial: Record<string, unknown> | undefined): Facts {
  const facts = debianFacts();
  for (const [k, v] of Object.entries(partial ?? {})) {
    const base = (facts as unknown as Record<string, unknown>)[k];
    if (base instanceof Map && v && typeof v === 'object') {
      for (const [name, value] of Object.entries(v)) {
        if (value === null) base.delete(name);
        else base.set(name, value);
      }
    } else if (base && typeof base === 'object' && !Array.isArray(base) && v && typeof v === 'object' && !Array.isArray(v)) {
      Object.assign(base, v);
    } else {
      (facts as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return facts;
}

/** File content in a case: text (stored as UTF-8), or any bytes as `{ "base64": "…" }`. */
export type ContentJSON = string | { base64: string };

export function contentBytes(c: ContentJSON): Buffer {
  return typeof c === 'string' ? Buffer.from(c, 'utf8') : Buffer.from(c.base64, 'base64');
}

export interface PredictedJSON {
  packagesInstalled?: string[];
  packagesRemoved?: string[];
  files?: Record<string, ContentJSON | null>;
  directories?: string[];
  users?: string[];
  groups?: string[];
  services?: Record<string, 'active' | 'inactive'>;
  anyChange?: boolean;
}

export function predictedFrom(p: PredictedJSON | undefined): PredictedState {
  const s = emptyPredictedState();
  for (const n of p?.packagesInstalled ?? []) s.packagesInstalled.add(n);
  for (const n of p?.packagesRemoved ?? []) s.packagesRemoved.add(n);
  for (const [k, v] of Object.entries(p?.files ?? {})) s.files.set(k, v === null ? null : contentBytes(v));
  for (const n of p?.directories ?? []) s.directories.add(n);
  for (const n of p?.users ?? []) s.users.add(n);
  for (const n of p?.groups ?? []) s.groups.add(n);
  for (const [k, v] of Object.entries(p?.services ?? {})) s.services.set(k, v);
  s.anyChange = p?.anyChange ?? false;
  return s;
}

/** A path as the file probe would report it, written readably in a case file. */
export type FileJSON =
  | 'absent'
  | { type: 'file'; content: ContentJSON; mode?: string; owner?: string; group?: string }
  | { type: 'directory'; mode?: string; owner?: string; group?: string }
  | { type: 'link'; target: string };

/** The probe results (both the with- and without-content forms) for a described path. */
export function fileProbeResults(path: string, f: FileJSON): Array<[string, ProbeResult]> {
  let stat: string;
  let full: string;
  if (f === 'absent') stat = full = 'absent\n';
  else if (f.type === 'directory') stat = full = `directory ${f.mode ?? '755'} ${f.owner ?? 'root'} ${f.group ?? 'root'}\n`;
  else if (f.type === 'link') stat = full = `link ${f.target}`;
  else {
    const bytes = contentBytes(f.content);
    const sha = createHash('sha256').update(bytes).digest('hex');
    stat = `file ${f.mode ?? '644'} ${f.owner ?? 'root'} ${f.group ?? 'root'} ${bytes.length} ${sha}`;
    // As the shared file read gives it: the content instead of the checksum.
    full = `file ${f.mode ?? '644'} ${f.owner ?? 'root'} ${f.group ?? 'root'} ${bytes.length} -\n${bytes.toString('base64')}`;
  }
  return [
    [fileProbeKey(path, false), { stdout: stat, code: 0 }],
    [fileProbeKey(path, true), { stdout: full, code: 0 }],
  ];
}
