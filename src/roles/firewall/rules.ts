import { isAnyAddress, normaliseAddress, parseNetwork } from '../../modules/lib/cidr.js';
import type { UfwParams } from '../../modules/ufw/index.js';
import { GROUPS } from '../shared.js';

export type FirewallRule = NonNullable<UfwParams['rules']>[number];

/** What the rules depend on: the host's groups, its vars, and the private addresses of the other groups' hosts. */
export interface FirewallInput {
  /** The host's own private address: traffic to itself goes over loopback, so it is never a source. */
  self: string;
  groups: string[];
  vars: Record<string, unknown>;
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
  const port = (name: string) => v[name] as number;
  const cidrs = (name: string) => (v[name] as string[] | undefined) ?? [];
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
  if (member(GROUPS.webservers)) allow(port('http_port'), peers(GROUPS.loadbalancers), 'http from load balancer');
  if (member(GROUPS.databases)) allow(port('mysql_port'), peers(GROUPS.databases, GROUPS.webservers), 'mysql from database/app host');

  const monitoring = cidrs('monitoring_cidrs');
  allow(port('node_exporter_port'), monitoring, 'node exporter from monitoring');
  if (member(GROUPS.loadbalancers)) allow(port('haproxy_exporter_port'), monitoring, 'haproxy exporter from monitoring');
  if (member(GROUPS.webservers)) allow(port('nginx_exporter_port'), monitoring, 'nginx exporter from monitoring');
  if (member(GROUPS.databases)) allow(port('mysqld_exporter_port'), monitoring, 'mysqld exporter from monitoring');
  if (member(GROUPS.monitoring)) allow(port('prometheus_port'), cidrs('admin_cidrs'), 'prometheus from admin');

  for (const extra of (v.firewall_extra_rules as FirewallRule[] | undefined) ?? []) rules.push(extra);
  return rules;
}

const RULE_FIELDS = new Set(['rule', 'port', 'proto', 'from', 'to', 'comment']);
const PORT_SPEC = /^\d{1,5}(:\d{1,5})?(,\d{1,5}(:\d{1,5})?)*$/;

export function isAddress(s: unknown): boolean {
  return typeof s === 'string' && (isAnyAddress(s) || parseNetwork(s) !== undefined);
}

/** Problems with firewall_extra_rules, named by index, before any connection. */
export function extraRuleProblems(rules: unknown): string[] {
  if (!Array.isArray(rules)) return ['firewall_extra_rules: must be a list of { rule, port, proto, from, to, comment }'];
  const problems: string[] = [];
  rules.forEach((r: unknown, i) => {
    const at = `firewall_extra_rules[${i}]`;
    if (!r || typeof r !== 'object') return void problems.push(`${at}: must be { rule, port, proto, from, to, comment }`);
    const x = r as Record<string, unknown>;
    for (const k of Object.keys(x)) if (!RULE_FIELDS.has(k)) problems.push(`${at}.${k}: unknown field (allowed: ${[...RULE_FIELDS].join(', ')})`);
    if (!['allow', 'deny', 'reject', 'limit'].includes(String(x.rule))) problems.push(`${at}.rule: must be allow, deny, reject or limit`);
    if (x.port !== undefined) {
      const ok = typeof x.port === 'number' ? Number.isInteger(x.port) && x.port >= 1 && x.port <= 65535 : typeof x.port === 'string' && PORT_SPEC.test(x.port);
      if (!ok) problems.push(`${at}.port: must be a port, a range like 8000:8100 or a list like 80,443`);
    }
    if (x.proto !== undefined && !['tcp', 'udp', 'any'].includes(String(x.proto))) problems.push(`${at}.proto: must be tcp, udp or any`);
    for (const k of ['from', 'to'] as const) if (x[k] !== undefined && !isAddress(x[k])) problems.push(`${at}.${k}: must be an IP address, a CIDR network or "any"`);
  });
  return problems;
}
