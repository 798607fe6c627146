import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadInventory, selectHosts } from '../../../src/inventory/index.js';
import { InputError } from '../../../src/util/errors.js';

const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/good/inventory/full.yml');
const inv = loadInventory(file, { env: {} });

describe('--limit patterns', () => {
  it.each([
    [undefined, ['bastion', 'web1', 'web2', 'db1', 'lone']],
    ['all', ['bastion', 'web1', 'web2', 'db1', 'lone']],
    ['*', ['bastion', 'web1', 'web2', 'db1', 'lone']],
    ['web1', ['web1']],
    ['db1,web1', ['web1', 'db1']],
    ['web', ['web1', 'web2']],
    ['prod', ['web1', 'web2', 'db1']],
    ['web*', ['web1', 'web2']],
    ['web?', ['web1', 'web2']],
    ['*1', ['web1', 'db1']],
    ['d*,bastion', ['bastion', 'db1']],
    ['prod,!web2', ['web1', 'db1']],
    ['prod:!web', ['db1']],
    ['!prod', ['bastion', 'lone']],
    ['prod:&web', ['web1', 'web2']],
    ['prod,&monitoring', ['db1']],
    ['all,&web*,!web1', ['web2']],
    [' web1 , db1 ', ['web1', 'db1']],
  ] as Array<[string | undefined, string[]]>)('%s → %j', (pattern, hosts) => {
    expect(selectHosts(inv, pattern)).toEqual(hosts);
  });

  it('a glob that matches nothing is an error', () => {
    expect(() => selectHosts(inv, 'zz*')).toThrow('--limit: "zz*" matches no host or group');
  });

  it.each(['nosuch', 'web1,nosuch', '!nosuch', '&nosuch', 'prod,&'])('an unknown term is an error: %s', (pattern) => {
    const term = pattern.split(/[,:]/).map((t) => t.trim().replace(/^[!&]/, '')).find((t) => !inv.hosts.has(t) && !inv.groups.has(t));
    let err: unknown;
    try {
      selectHosts(inv, pattern);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toBe(`--limit: "${term}" is neither a host nor a group of inventory full`);
    expect((err as InputError).hint).toBe('known groups: all, prod, web, db, monitoring');
  });

  it('a pattern of separators only is an error', () => {
    expect(() => selectHosts(inv, ',:,')).toThrow(new InputError('--limit: empty pattern'));
  });
});
