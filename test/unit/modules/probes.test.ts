/**
 * Raw probe output → typed state, through each module's exported probe constructor (the same
 * object plan() reads with ctx.read): one row per case. Module cases (cases/<module>/*.json) start
 * from raw output too; this table pins the parse on its own, including "no answer" (undefined).
 */
import { describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../../src/facts/index.js';
import { aptPolicy, commandSucceeds, groupEntries, pathExists, unitState, userEntry, type Probe } from '../../../src/modules/index.js';
import { databaseRow } from '../../../src/modules/mysql/db.js';

const ok = (stdout: string): ProbeResult => ({ stdout, code: 0 });

interface Row {
  name: string;
  probe: Probe<unknown>;
  raw: ProbeResult | undefined;
  value: unknown;
}

const APT_POLICY = `nginx-light:
  Installed: (none)
  Candidate: 1.22.1-9
  Version table:
     1.22.1-9 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
curl:
  Installed: 7.88.1-10
  Candidate: 7.88.1-10+deb12u8
`;

const rows: Row[] = [
  { name: 'pathExists: test -e succeeded', probe: pathExists('/srv/stamp'), raw: { stdout: '', code: 0 }, value: true },
  { name: 'pathExists: test -e failed', probe: pathExists('/srv/stamp'), raw: { stdout: '', code: 1 }, value: false },
  { name: 'pathExists: no answer is not "exists"', probe: pathExists('/srv/stamp'), raw: undefined, value: false },
  { name: 'commandSucceeds: exit 0', probe: commandSucceeds('grep -q x /etc/x'), raw: { stdout: 'x\n', code: 0 }, value: true },
  { name: 'commandSucceeds: exit 2', probe: commandSucceeds('grep -q x /etc/x'), raw: { stdout: '', code: 2 }, value: false },
  {
    name: 'aptPolicy: the candidate of each package',
    probe: aptPolicy(['nginx-light', 'curl']),
    raw: ok(APT_POLICY),
    value: new Map([
      ['nginx-light', '1.22.1-9'],
      ['curl', '7.88.1-10+deb12u8'],
    ]),
  },
  { name: 'aptPolicy: an unknown package has no candidate', probe: aptPolicy(['nope']), raw: ok(''), value: new Map() },
  {
    name: 'groupEntries: getent lines, members split',
    probe: groupEntries(['deploy', 'www-data']),
    raw: ok('deploy:x:1001:alice,bob\nwww-data:x:33:\n'),
    value: new Map([
      ['deploy', { name: 'deploy', gid: 1001, members: ['alice', 'bob'] }],
      ['www-data', { name: 'www-data', gid: 33, members: [] }],
    ]),
  },
  { name: 'groupEntries: a group getent does not know is absent', probe: groupEntries(['nope']), raw: { stdout: '', code: 2 }, value: new Map() },
  {
    name: 'userEntry: passwd line, primary and other groups, password status',
    probe: userEntry('deploy'),
    raw: ok('deploy:x:1001:1001::/home/deploy:/bin/bash\n@@primary deploy\n@@groups deploy www-data deploy\n@@status deploy L 2026-01-01 0 99999 7 -1\n'),
    value: { uid: 1001, gid: 1001, home: '/home/deploy', shell: '/bin/bash', primary: 'deploy', supplementary: ['www-data'], passwordStatus: 'L' },
  },
  { name: 'userEntry: no such user', probe: userEntry('deploy'), raw: { stdout: '', code: 2 }, value: undefined },
  {
    name: 'unitState (systemd): load, active, enablement',
    probe: unitState('nginx', 'systemd'),
    raw: ok('LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n'),
    value: { load: 'loaded', active: 'active', enabled: 'enabled' },
  },
  {
    name: 'unitState (sysv): an init script that is not there',
    probe: unitState('nginx', 'sysv'),
    raw: ok('LoadState=not-found\n'),
    value: { load: 'not-found', active: 'inactive', enabled: '' },
  },
  { name: 'unitState: no answer reads as a unit not found', probe: unitState('nginx', 'systemd'), raw: undefined, value: { load: 'not-found', active: 'inactive', enabled: '' } },
  { name: 'mysql databaseRow: the raw result, for probeOutput to judge', probe: databaseRow('app'), raw: ok('utf8mb4\tutf8mb4_general_ci\n'), value: ok('utf8mb4\tutf8mb4_general_ci\n') },
];

describe('probe output → typed state', () => {
  it.each(rows.map((r) => [r.name, r] as const))('%s', (_name, r) => {
    expect(r.probe.parse(r.raw)).toEqual(r.value);
  });

  it('a constructor spells its key once: the same arguments give the same key, others another', () => {
    expect(unitState('nginx', 'systemd').key).toBe(unitState('nginx', 'sysv').key);
    expect(groupEntries(['b', 'a', 'b']).key).toBe(groupEntries(['a', 'b']).key);
    expect(pathExists('/a').key).not.toBe(pathExists('/b').key);
    expect(databaseRow('app').key).not.toBe(databaseRow('other').key);
  });
});
