// @vitest-environment node
import { describe, expect, it } from 'vitest';
import { bridgeName, buildLayout, netnsName, parseSubnet, selectHosts, vethName } from '../../src/lab/layout.ts';
import { imageSources, mirrorHosts, parseDeb822Sources, parseOneLineSources, pickMirrors, securityFromDebian } from '../../src/lab/mirror.ts';
import { shellQuote } from '../../src/lab/hosts.ts';
import { LabError } from '../../src/lab/errors.ts';

describe('lab layout', () => {
  it('keeps the documented names and addresses of the default instance', () => {
    const l = buildLayout('default', '10.77.0.0/24', selectHosts({}));
    expect(l.bridge).toBe('provlab0');
    expect(l.gateway).toBe('10.77.0.1');
    expect(l.client).toMatchObject({ address: '10.77.0.250', netns: 'provlab-client' });
    expect(Object.fromEntries(l.hosts.map((h) => [h.name, h.address]))).toEqual({
      'lb-01': '10.77.0.10', 'web-01': '10.77.0.11', 'web-02': '10.77.0.12', 'mon-01': '10.77.0.20',
    });
    expect(l.hosts[0]).toMatchObject({ netns: 'provlab-lb-01', machine: 'lb-01' });
  });

  it('numbers extra nodes from .101 and honours --only', () => {
    const hosts = selectHosts({ only: ['web-01'], nodes: 3 });
    expect(hosts).toEqual([['web-01', 11], ['node-001', 101], ['node-002', 102], ['node-003', 103]]);
    expect(() => selectHosts({ nodes: 100 })).toThrow(LabError);
    expect(() => selectHosts({ only: ['db-09'] })).toThrow(/unknown host/);
  });

  it('derives interface names that fit 15 characters and differ per instance', () => {
    for (const name of ['t1', 'a-rather-long-instance-name', 'default']) {
      expect(bridgeName(name).length).toBeLessThanOrEqual(15);
      expect(vethName(name, 250).length).toBeLessThanOrEqual(15);
    }
    expect(bridgeName('t1')).toBe('provlab-t1');
    expect(vethName('t1', 11)).not.toBe(vethName('default', 11));
    expect(netnsName('t1', 'web-01')).toBe('provlab-t1-web-01');
  });

  it('accepts only /24 network addresses', () => {
    expect(parseSubnet('10.78.0.0/24')).toEqual({ subnet: '10.78.0.0/24', prefix: '10.78.0' });
    for (const bad of ['10.78.0.0/16', '10.78.0.5/24', '10.278.0.0/24', 'lab']) expect(() => parseSubnet(bad)).toThrow(LabError);
  });
});

describe('machine mirror discovery', () => {
  const deb822 = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security/
Suites: bookworm-security
Components: main
`;

  it('reads deb822 .sources', () => {
    const m = pickMirrors(parseDeb822Sources(deb822));
    expect(m).toEqual({ debian: 'http://deb.debian.org/debian', security: 'http://deb.debian.org/debian-security' });
    expect(mirrorHosts(m)).toEqual(['deb.debian.org']);
    expect(imageSources(m)).toContain('Suites: bookworm-security');
  });

  it('reads one-line sources.list and prefers the bookworm entry over a third-party one', () => {
    const text = `# comment
deb [arch=amd64 signed-by=/x.gpg] http://apt.example.org/pg bookworm-pgdg main
deb http://mirror.example.net/debian bookworm main contrib
deb-src http://mirror.example.net/debian bookworm main
deb http://security.example.net/debian-security bookworm-security main
`;
    const m = pickMirrors(parseOneLineSources(text));
    expect(m).toEqual({ debian: 'http://mirror.example.net/debian', security: 'http://security.example.net/debian-security' });
  });

  it('without a security source, takes the security archive beside the Debian mirror (the lab hosts get bookworm-security)', () => {
    const m = pickMirrors(parseOneLineSources('deb http://mirror.example.net/debian bookworm main\n'));
    expect(m).toEqual({ debian: 'http://mirror.example.net/debian', security: 'http://mirror.example.net/debian-security' });
    expect(imageSources(m)).toMatch(/URIs: http:\/\/mirror\.example\.net\/debian-security\nSuites: bookworm-security\n/);
    // The same host: the lab's proxy lets the hosts reach it with no new rule.
    expect(mirrorHosts(m)).toEqual(['mirror.example.net']);
    expect(securityFromDebian('http://snapshot.debian.org/archive/debian/20250520T000000Z')).toBe('http://snapshot.debian.org/archive/debian-security/20250520T000000Z');
    expect(securityFromDebian('http://deb.debian.org/debian/')).toBe('http://deb.debian.org/debian-security');
    // No `debian` path segment: nothing to derive (no guessed host), the hosts then have no security suite.
    expect(securityFromDebian('http://apt.example.org/mirror/bookworm')).toBeUndefined();
    expect(pickMirrors(parseOneLineSources('deb http://apt.example.org/mirror bookworm main\n')).security).toBeUndefined();
  });

  it('skips disabled stanzas and fails clearly without any Debian source', () => {
    const disabled = deb822.replace('Types: deb\n#', 'Enabled: no\nTypes: deb\n#');
    expect(parseDeb822Sources(disabled)).toHaveLength(1);
    // Only a security source left: there is no mirror to debootstrap from.
    expect(() => pickMirrors(parseDeb822Sources(disabled))).toThrow(/no Debian mirror/);
    expect(() => pickMirrors([])).toThrow(LabError);
  });
});

describe('remote command quoting', () => {
  it('keeps argument boundaries through the remote shell', () => {
    expect(shellQuote('true')).toBe('true');
    expect(shellQuote('a b')).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});
