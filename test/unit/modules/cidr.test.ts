import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { isAnyAddress, networkContains, networksOverlap, normaliseAddress, parseNetwork } from '../../../src/modules/lib/cidr.js';

describe('parseNetwork', () => {
  test.each([
    ['10.77.0.10', 4, 32],
    ['10.0.0.0/8', 4, 8],
    ['0.0.0.0/0', 4, 0],
    ['255.255.255.255/32', 4, 32],
    ['192.168.1.0/255.255.255.0', 4, 24],
    ['2001:db8::/32', 6, 32],
    ['::1', 6, 128],
    ['::ffff:10.0.0.1', 6, 128],
  ])('%s', (text, family, prefix) => {
    expect(parseNetwork(text)).toMatchObject({ family, prefix });
  });

  test.each(['10.0.0.256', '10.0.0', '10.0.0.1.2', '010.0.0.1', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/8/8', '255.0.255.0/255.0.255.0', '1::2::3', '2001:db8:::1', 'fe80::1%eth0', '', 'any', '12345::'])(
    'refuses %j',
    (text) => {
      expect(parseNetwork(text)).toBeUndefined();
    },
  );
});

describe('normaliseAddress (as ufw stores addresses)', () => {
  test.each([
    ['10.77.0.10/32', '10.77.0.10'],
    ['10.1.2.3/16', '10.1.0.0/16'],
    ['10.1.2.3/0', 'any'],
    ['0.0.0.0/0', 'any'],
    ['::/0', 'any'],
    ['any', 'any'],
    ['192.168.1.7/255.255.255.0', '192.168.1.0/24'],
    ['2001:DB8:0:0::1/64', '2001:db8::1/64'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['::1/128', '::1'],
  ])('%s → %s', (input, want) => {
    expect(normaliseAddress(input)).toBe(want);
  });

  test('a malformed address is an error', () => {
    expect(() => normaliseAddress('10.0.0.300')).toThrow('not an IP address');
  });
});

describe('networkContains', () => {
  test.each([
    ['10.0.0.0/8', '10.77.0.10', true],
    ['10.0.0.0/8', '10.0.0.0/8', true],
    ['10.0.0.0/8', '10.0.0.0/7', false],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['10.77.0.0/24', '10.77.0.255', true],
    ['10.77.0.0/25', '10.77.0.128', false],
    ['10.77.0.0/25', '10.77.0.0/24', false],
    ['10.77.0.10', '10.77.0.10', true],
    ['10.77.0.10/32', '10.77.0.10', true],
    ['10.77.0.10', '10.77.0.11', false],
    ['10.77.0.99/24', '10.77.0.1', true], // host bits in the outer network are ignored
    ['0.0.0.0/0', '203.0.113.5', true],
    ['any', '2001:db8::1', true],
    ['10.0.0.0/8', 'any', false],
    ['255.255.255.255', '255.255.255.255', true],
    ['128.0.0.0/1', '127.255.255.255', false],
    ['2001:db8::/32', '2001:db8:ffff::1', true],
    ['2001:db8::/32', '2001:db9::1', false],
    ['10.0.0.0/8', '::ffff:10.0.0.1', false], // families never mix
  ])('%s contains %s: %s', (outer, inner, want) => {
    expect(networkContains(outer, inner)).toBe(want);
  });

  test('any address is in its own /n for every n, and a /n contains exactly what shares its first n bits', () => {
    const octet = fc.integer({ min: 0, max: 255 });
    const ip = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
    fc.assert(
      fc.property(ip, ip, fc.integer({ min: 0, max: 32 }), (a, b, n) => {
        expect(networkContains(`${a}/${n}`, a)).toBe(true);
        const toBits = (s: string) => s.split('.').map((o) => Number(o).toString(2).padStart(8, '0')).join('');
        const samePrefix = toBits(a).slice(0, n) === toBits(b).slice(0, n);
        expect(networkContains(`${a}/${n}`, b)).toBe(samePrefix);
        expect(networksOverlap(`${a}/${n}`, b)).toBe(samePrefix);
      }),
    );
  });

  test('"any" forms', () => {
    expect(['any', '0.0.0.0/0', '::/0', ' ANY '].every(isAnyAddress)).toBe(true);
    expect(isAnyAddress('0.0.0.0')).toBe(false);
  });
});
