import type { z } from 'zod';
import type { Host } from '../inventory/index.js';
import type { RoleContext } from './types.js';
import { defaultOf, SHARED, type SharedVar } from './vars.js';

/**
 * Conventions every role shares: group names, ports and who may reach what. The firewall role
 * opens exactly these; the service roles listen on them. One place, so they cannot disagree.
 */
export const GROUPS = {
  loadbalancers: 'loadbalancers',
  webservers: 'webservers',
  databases: 'databases',
  dbPrimary: 'db_primary',
  dbReplica: 'db_replica',
  monitoring: 'monitoring',
} as const;

/**
 * The shared vars' defaults (their schemas are SHARED in vars.ts), for code that needs a value
 * outside a role's vars: tests, a role's own constants.
 */
export const SHARED_DEFAULTS = Object.fromEntries(Object.entries(SHARED).map(([k, schema]) => [k, defaultOf(schema)])) as {
  [K in SharedVar]: z.output<(typeof SHARED)[K]>;
};

export function inGroup(ctx: RoleContext, group: string): boolean {
  return ctx.host.groups.includes(group);
}

/** A host's private address (its `private_address` var, else its inventory address). */
export function privateAddress(host: Host): string {
  const v = host.vars.private_address;
  return typeof v === 'string' && v ? v : host.address;
}

export function groupAddresses(ctx: RoleContext, group: string): string[] {
  return ctx.hostsIn(group).map(privateAddress);
}

/**
 * With a load-balancer pair (`lb_virtual_ip` set, two or more load balancers), the one that obtains
 * the ACME certificate: the first of the group. The others copy it through the control machine.
 */
export function acmeIssuer(ctx: RoleContext, virtualIp: string): Host | undefined {
  if (!virtualIp) return undefined;
  const lbs = ctx.hostsIn(GROUPS.loadbalancers);
  return lbs.length > 1 ? lbs[0] : undefined;
}

/**
 * A template task's `validate` for a systemd unit file: systemd-analyze wants the unit under its own name,
 * so the candidate is copied into a temporary folder as `unitName` and verified there.
 */
export function verifyUnitAs(unitName: string): string {
  return `d=$(mktemp -d) && cp %s "$d/${unitName}" && systemd-analyze verify "$d/${unitName}" >/dev/null; r=$?; rm -rf "$d"; exit $r`;
}
