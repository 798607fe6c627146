/**
 * Which site the end-to-end tests converge and judge. PROVISION_E2E_TOPOLOGY:
 * - `site` (default): the reference design, the instance's inventory (inventory/lab.yml or
 *   inventory/<instance>.yml, written by hand): lb-01, web-01 + web-02 (also the databases), mon-01.
 * - `split`: inventory/prod-split.yml, the databases on hosts of their own (lb-01, web-01, web-02,
 *   db-01, db-02, mon-01), made into inventory/e2e-split-<instance>.yml for the instance that is up:
 *   its addresses, SSH key, known_hosts, Pebble and a secrets file of its own (never committed).
 * The tests ask the inventory which hosts are in which group (lab-env.ts `group`), never a literal
 * host name for a role, so the same files judge both topologies.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { labHosts, labPaths } from '../../src/lab/index.ts';
import { ensureLabSecrets } from '../../src/lab/secrets.ts';

export type Topology = 'site' | 'split';

export function topologyFrom(value: string | undefined): Topology {
  const t = value || 'site';
  if (t !== 'site' && t !== 'split') throw new Error(`PROVISION_E2E_TOPOLOGY="${t}": expected "site" (the default) or "split"`);
  return t;
}

/** The hosts of inventory/prod-split.yml, all on the lab (layout.ts gives db-01/db-02 their octets). */
export const SPLIT_HOSTS = ['lb-01', 'web-01', 'web-02', 'db-01', 'db-02', 'mon-01'];

/** The inventory name of a topology on an instance (a file inventory/<name>.yml). */
export function inventoryName(topology: Topology, instance: string): string {
  if (topology === 'split') return `e2e-split-${instance}`;
  return instance === 'default' ? 'lab' : instance;
}

/** What of a lab instance goes into its split inventory (labPaths and labHosts of an instance that is up). */
export interface LabParticulars {
  instance: string;
  subnet: string;
  gateway: string;
  sshKey: string;
  knownHosts: string;
  acmeDirectory: string;
  pebbleCa: string;
  /** host name → address */
  addresses: Record<string, string>;
}

/**
 * inventory/prod-split.yml (its text) with the lab instance's particulars in place of its placeholders;
 * the rest (every var, the groups, the comments) as documented, so the e2e suite judges the file users copy.
 */
export function splitInventoryText(prodSplit: string, lab: LabParticulars, inventory: string): string {
  const doc = parseDocument(prodSplit);
  doc.set('secrets_file', `${inventory}.secrets.yml`);
  doc.setIn(['defaults', 'user'], 'root');
  doc.setIn(['defaults', 'identity_file'], lab.sshKey);
  doc.setIn(['defaults', 'known_hosts'], lab.knownHosts);
  // The lab logs in as root: no sudo in between.
  doc.deleteIn(['defaults', 'become']);
  const inFile = Object.keys((doc.get('hosts') as { toJSON(): Record<string, unknown> }).toJSON());
  for (const h of inFile) {
    const a = lab.addresses[h];
    if (!a) throw new Error(`lab ${lab.instance} has no host ${h} (inventory/prod-split.yml names it)`);
    doc.setIn(['hosts', h, 'address'], a);
    // One address per lab host: the private one is the same.
    if (doc.hasIn(['hosts', h, 'vars', 'private_address'])) doc.setIn(['hosts', h, 'vars', 'private_address'], a);
  }
  const monitoring = lab.addresses['mon-01'];
  if (!monitoring) throw new Error(`lab ${lab.instance} has no host mon-01`);
  // The control machine is the lab's gateway, the only admin source (as in inventory/lab.yml).
  doc.setIn(['vars', 'admin_cidrs'], doc.createNode([`${lab.gateway}/32`], { flow: true }));
  doc.setIn(['vars', 'monitoring_cidrs'], doc.createNode([`${monitoring}/32`], { flow: true }));
  doc.setIn(['vars', 'acme_directory_url'], lab.acmeDirectory);
  doc.setIn(['vars', 'acme_ca_bundle'], lab.pebbleCa);
  return (
    `# Made by test/e2e/topology.ts from inventory/prod-split.yml for lab instance "${lab.instance}" (${lab.subnet}): do not edit, never commit.\n` +
    doc.toString({ lineWidth: 0 })
  );
}

/** Writes the split inventory of an instance that is up, and its secrets file (random values, 0600); returns the file. */
export function writeSplitInventory(root: string, instance: string, inventory: string): string {
  const p = labPaths(instance);
  const lab: LabParticulars = { instance, subnet: p.subnet, gateway: p.gateway, sshKey: p.sshKey, knownHosts: p.knownHosts, acmeDirectory: p.acmeDirectory, pebbleCa: p.pebbleCa, addresses: labHosts(instance) };
  const file = path.join(root, 'inventory', `${inventory}.yml`);
  writeFileSync(file, splitInventoryText(readFileSync(path.join(root, 'inventory/prod-split.yml'), 'utf8'), lab, inventory));
  ensureLabSecrets(path.join(root, 'inventory', `${inventory}.secrets.yml`));
  return file;
}
