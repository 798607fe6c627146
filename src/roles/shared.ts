import type { Host } from '../inventory/index.js';
import type { RoleContext } from './types.js';

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

/** Shared defaults: every role that reads one of these declares it in its defaults from here. */
export const SHARED_DEFAULTS = {
  domain: 'www.example.com',
  /** Who may SSH in (the control machine, bastions). */
  admin_cidrs: [] as string[],
  /** Who may scrape the exporters (the monitoring side). */
  monitoring_cidrs: [] as string[],
  ssh_port: 22,
  http_port: 80,
  https_port: 443,
  app_port: 3000,
  mysql_port: 3306,
  node_exporter_port: 9100,
  haproxy_exporter_port: 8405,
  nginx_exporter_port: 9113,
  mysqld_exporter_port: 9104,
  prometheus_port: 9090,
  /** Nginx's stub_status, on loopback only, read by the Nginx exporter. */
  nginx_status_port: 8080,
  /** The MySQL account the mysqld exporter uses (created by the mysql role on the primary, replicated). */
  mysql_exporter_user: 'exporter',
  /** The address services bind to and peers use: the host's inventory address unless set. */
  private_address: undefined as string | undefined,
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

export function str(vars: Record<string, unknown>, name: string): string {
  const v = vars[name];
  if (typeof v !== 'string') throw new Error(`var ${name} must be a string (got ${v === undefined ? 'nothing' : typeof v})`);
  return v;
}

export function num(vars: Record<string, unknown>, name: string): number {
  const v = vars[name];
  if (typeof v !== 'number') throw new Error(`var ${name} must be a number`);
  return v;
}

export function list(vars: Record<string, unknown>, name: string): string[] {
  const v = vars[name];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new Error(`var ${name} must be a list of strings`);
  return v as string[];
}
