import { describe, expect, it } from 'vitest';
import { REFERENCE_HOSTS, selectHosts } from '../../../src/lab/layout.ts';

describe('lab host selection', () => {
  it('starts the reference hosts by default, and lb-02 (the edge pair) only when asked for', () => {
    expect(selectHosts({}).map(([n]) => n)).toEqual(REFERENCE_HOSTS.map(([n]) => n));
    expect(selectHosts({ only: ['lb-01', 'lb-02', 'web-01'] })).toEqual([
      ['lb-01', 10],
      ['lb-02', 13],
      ['web-01', 11],
    ]);
    expect(() => selectHosts({ only: ['lb-03'] })).toThrow(/unknown host "lb-03".*also: lb-02/);
  });
});
