import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../../src/inventory/index.ts';

const root = path.resolve(import.meta.dirname, '../../..');
const vagrantfile = path.join(root, 'vagrant/Vagrantfile');
const env = {
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'replication-secret-1',
  PROVISION_SECRET_MYSQL_APP_PASSWORD: 'app-secret-12345',
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'exporter-secret-1',
};

/** name → ip from the Vagrantfile's HOSTS table. */
function vagrantHosts(): Record<string, string> {
  const text = readFileSync(vagrantfile, 'utf8');
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^\s*"([a-z0-9-]+)"\s*=>\s*\{\s*ip:\s*"([0-9.]+)"/gm)) out[m[1]!] = m[2]!;
  return out;
}

describe('Vagrant', () => {
  it('the Vagrantfile is valid Ruby', () => {
    const r = spawnSync('ruby', ['-c', vagrantfile], { encoding: 'utf8' });
    if (r.error) throw new Error('ruby is not installed (npm test installs it): cannot check the Vagrantfile');
    expect(r.stdout.trim()).toBe('Syntax OK');
  });

  it('defines exactly the hosts and addresses of inventory/vagrant.yml', () => {
    const inv = loadInventory(path.join(root, 'inventory/vagrant.yml'), { env });
    const fromInventory = Object.fromEntries([...inv.hosts.values()].map((h) => [h.name, h.address]));
    expect(vagrantHosts()).toEqual(fromInventory);
    expect(Object.keys(fromInventory)).toHaveLength(4);
  });

  it('each host uses the private key Vagrant makes for that machine', () => {
    const inv = loadInventory(path.join(root, 'inventory/vagrant.yml'), { env });
    for (const h of inv.hosts.values()) {
      expect(h.connection.identityFile).toBe(path.join(root, `vagrant/.vagrant/machines/${h.name}/virtualbox/private_key`));
      expect(h.connection.become).toBe(true);
    }
  });

  it('has the same groups as the lab inventory', () => {
    const vag = loadInventory(path.join(root, 'inventory/vagrant.yml'), { env });
    const lab = loadInventory(path.join(root, 'inventory/lab.yml'), { env });
    expect([...vag.groups.keys()].sort()).toEqual([...lab.groups.keys()].sort());
    for (const [g, hosts] of lab.groups) expect(vag.groups.get(g), g).toEqual(hosts);
  });
});
