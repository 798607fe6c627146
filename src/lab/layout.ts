import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { LabError } from './errors.ts';

/** Where the lab keeps things; fixed so inventories written once stay valid. */
export const STATE_ROOT = '/var/lib/provision-lab';
export const CACHE_ROOT = '/var/cache/provision-lab';
export const BASE_IMAGE = join(CACHE_ROOT, 'base-bookworm');

export const DEFAULT_INSTANCE = 'default';
export const DEFAULT_SUBNET = '10.77.0.0/24';
export const PROXY_PORT = 3128;
export const ACME_PORT = 14000;
export const PEBBLE_MGMT_PORT = 15000;
export const CHALLTEST_DNS_PORT = 8053;
export const CHALLTEST_MGMT_PORT = 8055;

/** The reference design's hosts and their fixed last octets (other code relies on them). */
export const REFERENCE_HOSTS: ReadonlyArray<readonly [string, number]> = [
  ['lb-01', 10],
  ['web-01', 11],
  ['web-02', 12],
  ['mon-01', 20],
];
/**
 * Hosts a test asks for by name (`only`) that the reference design does not have, so a plain `lab up`
 * starts exactly the reference hosts: the second load balancer of the edge pair, the database hosts
 * of the split topology (inventory/prod-split.yml).
 */
export const OPTIONAL_HOSTS: ReadonlyArray<readonly [string, number]> = [
  ['lb-02', 13],
  ['db-01', 21],
  ['db-02', 22],
];
/** A floating address a test may give the load-balancer pair (keepalived): on the bridge, never a host's. */
export const VIRTUAL_IP_OCTET = 100;
const GATEWAY_OCTET = 1;
const CLIENT_OCTET = 250;
const NODE_FIRST_OCTET = 100; // node-001 is .101
export const MAX_NODES = 99;

export interface HostSpec {
  name: string;
  address: string;
  /** Last octet of the address; also names the bridge-side veth. */
  octet: number;
  netns: string;
  /** Bridge-side end of the host's veth pair (the one link-down cuts). */
  veth: string;
  machine: string;
}

export interface Layout {
  name: string;
  subnet: string;
  /** The first three octets, e.g. "10.77.0". */
  prefix: string;
  gateway: string;
  bridge: string;
  stateDir: string;
  client: { address: string; netns: string; veth: string };
  hosts: HostSpec[];
}

export interface HostSelection {
  /** Subset of the reference hosts; undefined means all of them. */
  only?: string[];
  /** Number of extra generic hosts node-001.. */
  nodes?: number;
}

export function validateInstanceName(name: string): string {
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(name)) {
    throw new LabError(`invalid instance name "${name}": use lowercase letters, digits and dashes (max 31)`);
  }
  return name;
}

/** Accepts only an IPv4 /24 given by its network address: the lab numbers hosts by last octet. */
export function parseSubnet(cidr: string): { subnet: string; prefix: string } {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) throw new LabError(`invalid subnet "${cidr}": expected a.b.c.0/24`);
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) throw new LabError(`invalid subnet "${cidr}": octet out of range`);
  if (m[5] !== '24') throw new LabError(`invalid subnet "${cidr}": only /24 subnets are supported`);
  if (octets[3] !== 0) throw new LabError(`invalid subnet "${cidr}": use the network address (last octet 0)`);
  const prefix = octets.slice(0, 3).join('.');
  return { subnet: `${prefix}.0/24`, prefix };
}

function shortHash(text: string, len: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, len);
}

/** Interface names are limited to 15 characters; the default instance keeps its documented names. */
export function bridgeName(instance: string): string {
  if (instance === DEFAULT_INSTANCE) return 'provlab0';
  const readable = `provlab-${instance}`;
  return readable.length <= 15 ? readable : `pl${shortHash(instance, 8)}`;
}

function instanceTag(instance: string): string {
  return instance === DEFAULT_INSTANCE ? '0' : shortHash(instance, 4);
}

export function netnsName(instance: string, host: string): string {
  return instance === DEFAULT_INSTANCE ? `provlab-${host}` : `provlab-${instance}-${host}`;
}

export function vethName(instance: string, octet: number): string {
  return `vpl${instanceTag(instance)}-${octet}`;
}

export function nodeName(i: number): string {
  return `node-${String(i).padStart(3, '0')}`;
}

export function selectHosts(sel: HostSelection): Array<[string, number]> {
  const known = new Map([...REFERENCE_HOSTS, ...OPTIONAL_HOSTS].map(([n, o]) => [n, o]));
  const chosen: Array<[string, number]> = [];
  const only = sel.only ?? REFERENCE_HOSTS.map(([n]) => n);
  for (const n of only) {
    const octet = known.get(n);
    if (octet === undefined) {
      throw new LabError(`unknown host "${n}" in --only (reference hosts: ${REFERENCE_HOSTS.map(([h]) => h).join(', ')}; also: ${OPTIONAL_HOSTS.map(([h]) => h).join(', ')})`);
    }
    if (!chosen.some(([c]) => c === n)) chosen.push([n, octet]);
  }
  const nodes = sel.nodes ?? 0;
  if (!Number.isInteger(nodes) || nodes < 0 || nodes > MAX_NODES) {
    throw new LabError(`--hosts must be an integer from 0 to ${MAX_NODES}`);
  }
  for (let i = 1; i <= nodes; i++) chosen.push([nodeName(i), NODE_FIRST_OCTET + i]);
  return chosen;
}

export function buildLayout(name: string, subnetCidr: string, hosts: ReadonlyArray<readonly [string, number]>): Layout {
  validateInstanceName(name);
  const { subnet, prefix } = parseSubnet(subnetCidr);
  return {
    name,
    subnet,
    prefix,
    gateway: `${prefix}.${GATEWAY_OCTET}`,
    bridge: bridgeName(name),
    stateDir: join(STATE_ROOT, name),
    client: {
      address: `${prefix}.${CLIENT_OCTET}`,
      netns: netnsName(name, 'client'),
      veth: vethName(name, CLIENT_OCTET),
    },
    hosts: hosts.map(([host, octet]) => ({
      name: host,
      address: `${prefix}.${octet}`,
      octet,
      netns: netnsName(name, host),
      veth: vethName(name, octet),
      machine: name === DEFAULT_INSTANCE ? host : `${name}-${host}`,
    })),
  };
}

/** Per-instance file locations (all under the state dir). */
export function instanceFiles(stateDir: string) {
  return {
    stateFile: join(stateDir, 'state.json'),
    sshDir: join(stateDir, 'ssh'),
    sshKey: join(stateDir, 'ssh', 'id_ed25519'),
    sshPublicKey: join(stateDir, 'ssh', 'id_ed25519.pub'),
    knownHosts: join(stateDir, 'ssh', 'known_hosts'),
    hostsDir: join(stateDir, 'hosts'),
    logDir: join(stateDir, 'logs'),
    snapshotsDir: join(stateDir, 'snapshots'),
    pebbleDir: join(stateDir, 'pebble'),
    pebbleCa: join(stateDir, 'pebble', 'ca.pem'),
    proxyDir: join(stateDir, 'proxy'),
  };
}

export function hostDirs(stateDir: string, host: string) {
  const base = join(stateDir, 'hosts', host);
  return { base, upper: join(base, 'upper'), work: join(base, 'work'), merged: join(base, 'root') };
}
