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
