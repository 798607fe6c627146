import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadInventory, parseInventory, resolveInventoryPath } from '../../../src/inventory/index.js';
import { InventoryError } from '../../../src/util/errors.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/good/inventory');
const full = path.join(fixtures, 'full.yml');

describe('inventory loader: a complete inventory', () => {
  const inv = loadInventory(full, { env: {} });
  const host = (name: string) => inv.hosts.get(name)!;

  it('names the inventory after its file and keeps host order', () => {
    expect(inv.name).toBe('full');
    expect(inv.file).toBe(full);
    expect([...inv.hosts.keys()]).toEqual(['bastion', 'web1', 'web2', 'db1', 'lone']);
  });

  it('resolves group membership through hosts:, groups: and children:', () => {
    expect(Object.fromEntries(inv.groups)).toEqual({
      all: ['bastion', 'web1', 'web2', 'db1', 'lone'],
      prod: ['web1', 'web2', 'db1'],
      web: ['web1', 'web2'],
      db: ['db1'],
      monitoring: ['db1'],
    });
  });

  it('lists a host\'s groups parents first, starting with all', () => {
    expect(host('web1').groups).toEqual(['all', 'prod', 'web']);
    expect(host('db1').groups).toEqual(['all', 'monitoring', 'prod', 'db']);
    expect(host('bastion').groups).toEqual(['all']);
  });

  it('a host without a definition is reached at its own name', () => {
    expect(host('lone').address).toBe('lone');
    expect(host('lone').vars).toEqual({ tier: 'all', ntp: 'pool.ntp.org' });
  });

  it('vars: all < parent group < child group < host', () => {
    expect(host('bastion').vars).toEqual({ tier: 'all', ntp: 'pool.ntp.org' });
    expect(host('db1').vars).toEqual({ tier: 'db', ntp: 'pool.ntp.org', env: 'production' });
    expect(host('web2').vars).toEqual({ tier: 'web', ntp: 'pool.ntp.org', env: 'production', http_port: 80 });
    expect(host('web1').vars).toEqual({ tier: 'host', ntp: 'pool.ntp.org', env: 'production', http_port: 80 });
  });

  it('connection settings: defaults < group < host', () => {
    // bastion: defaults, but its own user
    expect(host('bastion').connection).toMatchObject({ user: 'jumper', port: 2200, jump: undefined, become: false });
    // web2: user from prod, port and jump from web
    expect(host('web2').connection).toMatchObject({ user: 'produser', port: 2222, jump: 'bastion' });
    // web1: the host's own port beats the web group's
    expect(host('web1').connection).toMatchObject({ user: 'produser', port: 22, jump: 'bastion', become: true, becomeUser: 'root' });
    expect(host('db1').connection).toMatchObject({ user: 'produser', port: 2200, jump: 'ops@203.0.113.10:2022' });
    expect(host('lone').connection).toMatchObject({ user: 'admin', port: 2200, connectTimeoutMs: 5000, acceptNewHostKeys: false });
  });

  it('paths are relative to the inventory file; ~ is the home directory', () => {
    expect(host('bastion').connection.identityFile).toBe(path.join(fixtures, 'keys/id_ed25519'));
    expect(host('bastion').connection.knownHosts).toBe(path.join(fixtures, 'known_hosts'));
    expect(host('web2').connection.identityFile).toBe(path.join(homedir(), '.ssh/other_key'));
  });

  it('the same file loads the same from another working directory', () => {
    const cwd = process.cwd();
    try {
      process.chdir(path.dirname(fixtures));
      const again = loadInventory('inventory/full.yml', { env: {} });
      expect(again.hosts.get('bastion')!.connection.identityFile).toBe(path.join(fixtures, 'keys/id_ed25519'));
    } finally {
      process.chdir(cwd);
    }
  });
});

describe('inventory loader: small cases', () => {
  const parse = (text: string) => parseInventory(text, '/inv/test.yml', {});

  it('a host with no map at all', () => {
    const inv = loadInventory(path.join(fixtures, 'minimal.yml'), { env: {} });
    expect(inv.hosts.get('localhost')).toMatchObject({ name: 'localhost', address: 'localhost', groups: ['all'], vars: {} });
    expect(inv.hosts.get('localhost')!.connection.port).toBe(22);
  });

  it('jump host forms: an inventory host, address, user@address, address:port, user@address:port', () => {
    for (const jump of ['gw', 'gw.example.net', 'ops@gw.example.net', '192.0.2.1:2222', 'ops@192.0.2.1:2222']) {
      const inv = parse(`hosts:\n  gw:\n    address: 192.0.2.1\n  app:\n    address: 10.0.0.1\n    jump: "${jump}"\n`);
      expect(inv.hosts.get('app')!.connection.jump).toBe(jump);
    }
  });

  it('channel: the inventory\'s wins over $PROVISION_CHANNEL, which wins over the default (persistent, left undefined); a bad value is refused at load', () => {
    const text = 'defaults:\n  channel: persistent\ngroups:\n  audited:\n    channel: exec\n    hosts: [a]\nhosts:\n  a: { address: 10.0.0.1 }\n  b: { address: 10.0.0.2 }\n';
    const bare = 'hosts:\n  a: { address: 10.0.0.1 }\n';
    const channels = (t: string, env: NodeJS.ProcessEnv) => [...parseInventory(t, '/inv/test.yml', env).hosts.values()].map((h) => h.connection.channel);
    expect(channels(text, {})).toEqual(['exec', 'persistent']);
    // An operator's variable does not turn the audited group's exec off.
    expect(channels(text, { PROVISION_CHANNEL: 'persistent' })).toEqual(['exec', 'persistent']);
    expect(channels(bare, {})).toEqual([undefined]);
    expect(channels(bare, { PROVISION_CHANNEL: 'exec' })).toEqual(['exec']);
    expect(channels(bare, { PROVISION_CHANNEL: '' })).toEqual([undefined]);
    expect(() => parseInventory(bare, '/inv/test.yml', { PROVISION_CHANNEL: 'pipelined' })).toThrow(InventoryError);
    expect(() => parseInventory(bare, '/inv/test.yml', { PROVISION_CHANNEL: 'pipelined' })).toThrow(/PROVISION_CHANNEL="pipelined": expected exec or persistent/);
    expect(() => parse('hosts:\n  a: { address: 10.0.0.1, channel: shell }\n')).toThrow(/channel/);
  });

  it('a group declared only through host.groups exists', () => {
    const inv = parse('hosts:\n  a:\n    address: 10.0.0.1\n    groups: [cache]\n');
    expect(inv.groups.get('cache')).toEqual(['a']);
  });

  it('an empty group is a group with no hosts', () => {
    const inv = parse('hosts:\n  a:\n    address: 10.0.0.1\ngroups:\n  spare:\n');
    expect(inv.groups.get('spare')).toEqual([]);
  });

  it('a diamond of children counts each host once and keeps parents before children', () => {
    const inv = parse(
      'hosts:\n  a:\n    address: 10.0.0.1\ngroups:\n  top:\n    children: [left, right]\n  left:\n    children: [leaf]\n  right:\n    children: [leaf]\n  leaf:\n    hosts: [a]\n    vars: {x: leaf}\n  \n',
    );
    expect(inv.hosts.get('a')!.groups).toEqual(['all', 'top', 'left', 'right', 'leaf']);
    expect(inv.groups.get('top')).toEqual(['a']);
  });

  it('--inventory NAME means inventory/NAME.yml; a path is taken as it is', () => {
    expect(resolveInventoryPath('prod', '/srv/site')).toBe('/srv/site/inventory/prod.yml');
    expect(resolveInventoryPath('lab/hosts.yml', '/srv/site')).toBe('/srv/site/lab/hosts.yml');
    expect(resolveInventoryPath('hosts.yaml', '/srv/site')).toBe('/srv/site/hosts.yaml');
    expect(resolveInventoryPath('/etc/provision/prod.yml', '/srv/site')).toBe('/etc/provision/prod.yml');
  });
});
