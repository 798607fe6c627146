import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../../src/inventory/index.ts';
import { loadPlaybook, validateRoleVars } from '../../../src/executor/index.ts';
import '../../../src/roles/builtin.ts';
import { getRole, roleNames } from '../../../src/roles/index.ts';

const root = path.resolve(import.meta.dirname, '../../..');
const env = {
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'replication-secret-1',
  PROVISION_SECRET_MYSQL_APP_PASSWORD: 'app-secret-12345',
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'exporter-secret-1',
};

describe.each(['prod', 'prod-split'])('inventory/%s.yml, a documented example', (name) => {
  const inv = loadInventory(path.join(root, `inventory/${name}.yml`), { env });

  it('loads, and the site playbook accepts its vars for every host (what --check needs before connecting)', () => {
    const playbook = loadPlaybook(path.join(root, 'playbooks/site.yml'));
    expect(() => validateRoleVars(inv, playbook, [...inv.hosts.keys()])).not.toThrow();
  });

  it('shows every role var (with its default or a secret)', () => {
    const vars = inv.hosts.get('web-01')!.vars;
    const missing = roleNames().flatMap((r) => Object.keys(getRole(r)!.vars.shape).filter((k) => !(k in vars) && k !== 'private_address').map((k) => `${r}.${k}`));
    expect(missing).toEqual([]);
  });

  it('lab, vagrant and prod have the same groups', () => {
    const lab = loadInventory(path.join(root, 'inventory/lab.yml'), { env });
    expect([...inv.groups.keys()].sort()).toEqual([...lab.groups.keys()].sort());
  });
});
