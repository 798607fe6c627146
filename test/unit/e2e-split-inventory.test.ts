/**
 * The e2e suite's split topology (PROVISION_E2E_TOPOLOGY=split) converges inventory/prod-split.yml itself,
 * with only the lab's particulars put in: this holds the generated inventory to that, on the real file.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseInventory } from '../../src/inventory/index.ts';
import { inventoryName, splitInventoryText, topologyFrom, type LabParticulars } from '../e2e/topology.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PROD_SPLIT = readFileSync(path.join(ROOT, 'inventory/prod-split.yml'), 'utf8');
const LAB: LabParticulars = {
  instance: 's6e',
  subnet: '10.118.0.0/24',
  gateway: '10.118.0.1',
  sshKey: '/var/lib/provision-lab/s6e/ssh/id_ed25519',
  knownHosts: '/var/lib/provision-lab/s6e/ssh/known_hosts',
  acmeDirectory: 'https://10.118.0.1:14000/dir',
  pebbleCa: '/var/lib/provision-lab/s6e/pebble/ca.pem',
  addresses: { 'lb-01': '10.118.0.10', 'web-01': '10.118.0.11', 'web-02': '10.118.0.12', 'mon-01': '10.118.0.20', 'db-01': '10.118.0.21', 'db-02': '10.118.0.22' },
};
const secretsEnv = {
  PROVISION_SECRET_MYSQL_APP_PASSWORD: 'app-password-1',
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'replication-password-1',
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'exporter-password-1',
};
/** The vars the lab puts in; every other one must be prod-split.yml's own. */
const LAB_VARS = ['admin_cidrs', 'monitoring_cidrs', 'acme_directory_url', 'acme_ca_bundle'];

function load(text: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'e2e-split-'));
  return parseInventory(text, path.join(dir, 'e2e-split-s6e.yml'), secretsEnv, { interactive: false, sshConfig: false });
}

describe('the e2e split inventory (test/e2e/topology.ts)', () => {
  it('is inventory/prod-split.yml on the lab: its hosts and groups, the lab addresses, key and CA, every other var as documented', () => {
    const text = splitInventoryText(PROD_SPLIT, LAB, 'e2e-split-s6e');
    const inv = load(text);
    expect([...inv.hosts.keys()].sort()).toEqual(Object.keys(LAB.addresses).sort());
    for (const [name, h] of inv.hosts) {
      expect(h.address, name).toBe(LAB.addresses[name]);
      expect(h.connection.user, name).toBe('root');
    }
    expect(inv.hosts.get('lb-01')!.vars.private_address).toBe('10.118.0.10');
    expect(inv.groups.get('db_primary')).toEqual(['db-01']);
    expect(inv.groups.get('db_replica')).toEqual(['db-02']);
    expect(inv.groups.get('databases')).toEqual(['db-01', 'db-02']);
    expect(inv.groups.get('webservers')).toEqual(['web-01', 'web-02']);
    expect(inv.groups.get('loadbalancers')).toEqual(['lb-01']);
    expect(inv.groups.get('monitoring')).toEqual(['mon-01']);
    const got = parse(text, { customTags: [{ tag: '!secret', resolve: (s: string) => `!secret ${s}` }] }) as { vars: Record<string, unknown>; defaults: Record<string, unknown> };
    // No placeholder address of the documented file is left in a value (documentation ranges, its private network).
    expect(JSON.stringify(got)).not.toMatch(/203\.0\.113\.|198\.51\.100\.|\b10\.0\.1\./);
    const documented = parse(PROD_SPLIT, { customTags: [{ tag: '!secret', resolve: (s: string) => `!secret ${s}` }] }) as { vars: Record<string, unknown> };
    expect(got.vars.admin_cidrs).toEqual(['10.118.0.1/32']);
    expect(got.vars.monitoring_cidrs).toEqual(['10.118.0.20/32']);
    expect(got.vars.acme_directory_url).toBe(LAB.acmeDirectory);
    expect(got.vars.acme_ca_bundle).toBe(LAB.pebbleCa);
    expect(got.defaults).toMatchObject({ user: 'root', identity_file: LAB.sshKey, known_hosts: LAB.knownHosts });
    const rest = (v: Record<string, unknown>) => Object.fromEntries(Object.entries(v).filter(([k]) => !LAB_VARS.includes(k)));
    expect(rest(got.vars)).toEqual(rest(documented.vars));
    expect(got.vars.mysql_app_password).toBe('!secret mysql_app_password');
  });

  it('refuses a lab that lacks a host of the topology, naming it', () => {
    const { 'db-02': _, ...addresses } = LAB.addresses;
    expect(() => splitInventoryText(PROD_SPLIT, { ...LAB, addresses }, 'e2e-split-s6e')).toThrow(/lab s6e has no host db-02/);
  });

  it('PROVISION_E2E_TOPOLOGY: site by default, split by name, anything else refused; each has its inventory name', () => {
    expect(topologyFrom(undefined)).toBe('site');
    expect(topologyFrom('')).toBe('site');
    expect(topologyFrom('split')).toBe('split');
    expect(() => topologyFrom('splt')).toThrow(/PROVISION_E2E_TOPOLOGY="splt"/);
    expect(inventoryName('site', 'default')).toBe('lab');
    expect(inventoryName('site', 'e5e')).toBe('e5e');
    expect(inventoryName('split', 'default')).toBe('e2e-split-default');
  });
});
