import { z } from 'zod';
import { normaliseAddress } from '../../modules/lib/cidr.js';
import type { UfwParams } from '../../modules/ufw/index.js';
import { GROUPS } from '../shared.js';
import { ACME_CHALLENGE_PORT } from '../haproxy/index.js';
import { isAddress, oneOf, text, wholeNumber } from '../vars.js';

export type FirewallRule = NonNullable<UfwParams['rules']>[number];

type PortVar = 'ssh_port' | 'http_port' | 'https_port' | 'mysql_port' | 'db_health_port' | 'node_exporter_port' | 'haproxy_exporter_port' | 'nginx_exporter_port' | 'mysqld_exporter_port' | 'prometheus_port';
/** The firewall role's vars the rules are computed from. */
export type FirewallVars = Record<PortVar, number> & { admin_cidrs: string[]; monitoring_cidrs: string[]; firewall_extra_rules: FirewallRule[]; lb_virtual_ip?: string };

/** What the rules depend on: the host's groups, its vars, and the private addresses of the other groups' hosts. */
export interface FirewallInput {
  /** The host's own private address: traffic to itself goes over loopback, so it is never a source. */
  self: string;
  groups: string[];
  vars: FirewallVars;
  /** Private addresses of a group's hosts. */
  groupAddresses(group: string): string[];
}

/**
 * The host's complete rule set, derived from its groups and the shared ports: SSH from the admins
 * first, then each service's port from exactly the hosts that talk to it, then the extra rules.
 * Pure: the same inventory always gives the same list, in the same order.
 */
export function firewallRules(input: FirewallInput): FirewallRule[] {
  const v = input.vars;
  const port = (name: PortVar) => v[name];
  const cidrs = (name: 'admin_cidrs' | 'monitoring_cidrs') => v[name];
  const member = (g: string) => input.groups.includes(g);
  const peers = (...groups: string[]) => groups.flatMap((g) => input.groupAddresses(g)).filter((a) => a !== input.self);

  const rules: FirewallRule[] = [];
  const seen = new Set<string>();
  const allow = (p: number, sources: string[], what: string) => {
    for (const from of sources) {
      const src = normaliseAddress(from);
      const key = `${p}/${src}`;
      if (seen.has(key)) continue; // a host in two source groups (web-02: app and database) is one rule
      seen.add(key);
      rules.push({ rule: 'allow', port: p, proto: 'tcp', ...(src === 'any' ? {} : { from: src }), comment: what });
    }
  };

  allow(port('ssh_port'), cidrs('admin_cidrs'), 'ssh from admin');
  if (member(GROUPS.loadbalancers)) {
    allow(port('http_port'), ['any'], 'http');
    allow(port('https_port'), ['any'], 'https');
  }
  // keepalived's adverts (VRRP, unicast) between the load-balancer pair only: nobody else can claim the floating address.
  if (member(GROUPS.loadbalancers) && v.lb_virtual_ip) {
    for (const from of peers(GROUPS.loadbalancers)) rules.push({ rule: 'allow', proto: 'vrrp', from: normaliseAddress(from), comment: 'vrrp from load-balancer peer' });
    // The pair's first load balancer asks for the ACME certificate: http-01 challenges reach it from whichever holds the address.
    const pair = input.groupAddresses(GROUPS.loadbalancers);
    if (pair.length > 1 && pair[0] === input.self) allow(ACME_CHALLENGE_PORT, peers(GROUPS.loadbalancers), 'acme http-01 from load-balancer peer');
    // The issuer pushes a renewed certificate to the others over SSH (certificates role, push.ts).
    if (pair.length > 1 && pair[0] !== input.self) allow(port('ssh_port'), [pair[0]!], 'ssh from the certificate issuer (push)');
  }
  if (member(GROUPS.webservers)) allow(port('http_port'), peers(GROUPS.loadbalancers), 'http from load balancer');
  if (member(GROUPS.databases)) allow(port('mysql_port'), peers(GROUPS.databases, GROUPS.webservers), 'mysql from database/app host');
  // The health agent (db_health role) answers the web servers' database endpoints only.
  if (member(GROUPS.databases)) allow(port('db_health_port'), peers(GROUPS.webservers), 'db health agent from app host');

  const monitoring = cidrs('monitoring_cidrs');
  allow(port('node_exporter_port'), monitoring, 'node exporter from monitoring');
  if (member(GROUPS.loadbalancers)) allow(port('haproxy_exporter_port'), monitoring, 'haproxy exporter from monitoring');
  if (member(GROUPS.webservers)) allow(port('nginx_exporter_port'), monitoring, 'nginx exporter from monitoring');
  if (member(GROUPS.databases)) allow(port('mysqld_exporter_port'), monitoring, 'mysqld exporter from monitoring');
  if (member(GROUPS.monitoring)) allow(port('prometheus_port'), cidrs('admin_cidrs'), 'prometheus from admin');

  for (const extra of v.firewall_extra_rules) rules.push(extra);
  return rules;
}

const PORT_SPEC = /^\d{1,5}(:\d{1,5})?(,\d{1,5}(:\d{1,5})?)*$/;
const ADDRESS = 'must be an IP address, a CIDR network or "any"';
const PORT = 'must be a port, a range like 8000:8100 or a list like 80,443';
const RULE = '{ rule, port, proto, from, to, comment }';

/** firewall_extra_rules: each problem named by index and field, before any connection. */
export function extraRules() {
  const rule = z.strictObject(
    {
      rule: oneOf(['allow', 'deny', 'reject', 'limit'], 'must be allow, deny, reject or limit'),
      port: z.union([wholeNumber(1, 65535, PORT), z.string().regex(PORT_SPEC, { error: PORT })], { error: PORT }).optional(),
      proto: oneOf(['tcp', 'udp', 'any'], 'must be tcp, udp or any').optional(),
      from: text(isAddress, ADDRESS).optional(),
      to: text(isAddress, ADDRESS).optional(),
      comment: z.string().optional(),
    },
    { error: (iss) => (iss.code === 'invalid_type' ? `must be ${RULE}` : undefined) },
  );
  return z.array(rule, { error: `must be a list of ${RULE}` }).meta({ type: `list of ${RULE}` });
}

/** A VRRP rule needs /etc/protocols (Debian's netbase) on the host: iptables knows "vrrp" only from it. */
export function needsProtocolNames(rules: FirewallRule[]): boolean {
  return rules.some((r) => r.proto === 'vrrp');
}
