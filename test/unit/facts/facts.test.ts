import { describe, expect, it } from 'vitest';
import { parseFacts } from '../../../src/facts/facts.ts';

const raw = (packages: string, dpkg = '') =>
  new Map([
    ['os', { stdout: 'ID=debian\nVERSION_ID="12"\nNOW=1800000000\n', code: 0 }],
    ['packages', { stdout: packages, code: 0 }],
    ['dpkg', { stdout: dpkg, code: 0 }],
    ['virt', { stdout: 'systemd-nspawn\n', code: 0 }],
  ]);

describe('facts: an interrupted dpkg', () => {
  it.each([
    ['all installed', 'nginx\tii \t1.22\nold\trc \t1.0\n', '', false],
    ['a package left unpacked', 'nginx\tii \t1.22\nhaproxy\tiU \t2.6\n', '', true],
    ['half-configured', 'haproxy\tiF \t2.6\n', '', true],
    ['half-installed, reinstall required', 'haproxy\tiHR\t2.6\n', '', true],
    ['triggers pending', 'man-db\tit \t2.11\n', '', true],
    ['journal entries not yet folded in', 'nginx\tii \t1.22\n', '0001\n', true],
  ])('%s', (_name, packages, dpkg, expected) => {
    const f = parseFacts(raw(packages, dpkg));
    expect(f.dpkgInterrupted).toBe(expected);
    expect(f.virtualization).toBe('systemd-nspawn');
  });

  it('only fully installed packages count as installed', () => {
    const f = parseFacts(raw('nginx\tii \t1.22\nhaproxy\tiU \t2.6\nold\trc \t1.0\n'));
    expect([...f.packages.keys()]).toEqual(['nginx']);
  });
});

describe('facts: the fact script on this machine', () => {
  it('reads what the machine says of itself', async () => {
    const { spawnSync } = await import('node:child_process');
    const os = await import('node:os');
    const { batchScript, parseBatchOutput } = await import('../../../src/facts/batch.ts');
    const { FACT_PROBES } = await import('../../../src/facts/facts.ts');
    const r = spawnSync('sh', ['-s'], { input: batchScript(FACT_PROBES, 'f00d') + '\n', encoding: 'utf8' });
    const f = parseFacts(parseBatchOutput(FACT_PROBES, 'f00d', r.stdout));
    expect(f.hostname).toBe(os.hostname());
    expect(f.arch).toBe(spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim());
    expect(f.os.family).toBe('debian');
    expect(Math.abs(f.now - Date.now() / 1000)).toBeLessThan(60);
    expect(f.packages.get('bash')?.version).toMatch(/^\d/);
    expect(f.users.get('root')).toMatchObject({ uid: 0, home: '/root' });
    expect(f.groups.get('root')?.gid).toBe(0);
    expect(f.ipv4).toContain('127.0.0.1/8');
    const stamps = spawnSync('sh', ['-c', 'stat -c %Y /var/lib/apt/periodic/update-success-stamp /var/lib/apt/lists/partial 2>/dev/null'], { encoding: 'utf8' });
    expect(f.aptUpdatedAt).toBe(Math.max(0, ...stamps.stdout.split('\n').filter(Boolean).map(Number)));
    expect(f.pendingHandlers).toEqual([]);
  });
});
