import { groupAddresses, privateAddress, SHARED_DEFAULTS } from '../shared.js';
import type { RoleDef } from '../types.js';
import { extraRuleProblems, firewallRules, isAddress } from './rules.js';
import { apt, ufw } from '../../modules/tasks.js';

const PORT_VARS = [
  'ssh_port',
  'http_port',
  'https_port',
  'mysql_port',
  'node_exporter_port',
  'haproxy_exporter_port',
  'nginx_exporter_port',
  'mysqld_exporter_port',
  'prometheus_port',
] as const;

export const role: RoleDef = {
  name: 'firewall',
  description: 'ufw: deny incoming by default; SSH from the admins, each service port only from the hosts that use it',
  defaults: {
    admin_cidrs: SHARED_DEFAULTS.admin_cidrs,
    monitoring_cidrs: SHARED_DEFAULTS.monitoring_cidrs,
    ssh_port: SHARED_DEFAULTS.ssh_port,
    http_port: SHARED_DEFAULTS.http_port,
    https_port: SHARED_DEFAULTS.https_port,
    mysql_port: SHARED_DEFAULTS.mysql_port,
    node_exporter_port: SHARED_DEFAULTS.node_exporter_port,
    haproxy_exporter_port: SHARED_DEFAULTS.haproxy_exporter_port,
    nginx_exporter_port: SHARED_DEFAULTS.nginx_exporter_port,
    mysqld_exporter_port: SHARED_DEFAULTS.mysqld_exporter_port,
    prometheus_port: SHARED_DEFAULTS.prometheus_port,
    private_address: SHARED_DEFAULTS.private_address,
    /** More ufw rules after the computed ones: [{ rule: allow, port: 8443, proto: tcp, from: 10.0.0.0/8, comment: … }]. */
    firewall_extra_rules: [],
    firewall_logging: 'low',
    /** Changes to an active firewall roll back by themselves unless a new SSH login succeeds within this (seconds; 0 = off). */
    firewall_commit_confirm_seconds: 60,
    /**
     * The ufw task refuses a rule set under which the address this run connects from (SSH_CONNECTION
     * on the host) could not log in again. true applies it anyway: for moving administration to
     * another address on purpose (with commit-confirm on, the change still rolls back when the new
     * login from here fails, so set firewall_commit_confirm_seconds: 0 as well for that).
     */
    firewall_allow_locking_out_this_run: false,
  },
  tasks(ctx) {
    const v = ctx.vars;
    const admin = (v.admin_cidrs as string[])[0]!;
    const confirm = v.firewall_commit_confirm_seconds as number;
    const rules = firewallRules({
      self: privateAddress(ctx.host),
      groups: ctx.host.groups,
      vars: v,
      groupAddresses: (g) => groupAddresses(ctx, g),
    });
    return [
      apt('install ufw', { packages: ['ufw'] }),
      // Exactly these rules (others purged); ufw adds them before it enables or changes defaults,
      // and the module refuses a rule set without SSH from the admin source or from this run's own address.
      ufw('firewall rules and policy', {
        state: 'enabled',
        default_incoming: 'deny',
        default_outgoing: 'allow',
        default_routed: 'deny',
        logging: v.firewall_logging as 'low',
        rules,
        purge_other_rules: true,
        admin_source: admin,
        ssh_port: v.ssh_port as number,
        allow_locking_out_this_run: v.firewall_allow_locking_out_this_run as boolean,
        ...(confirm > 0 ? { commit_confirm_seconds: confirm } : {}),
      }),
    ];
  },
  validate(vars) {
    const problems: string[] = [];
    for (const name of ['admin_cidrs', 'monitoring_cidrs'] as const) {
      const v = vars[name];
      if (!Array.isArray(v) || v.length === 0) {
        problems.push(
          name === 'admin_cidrs'
            ? 'admin_cidrs: must list at least one address or network (e.g. [203.0.113.5/32]): without it nobody could SSH in once ufw is on'
            : 'monitoring_cidrs: must list at least one address or network: without it no exporter can be scraped',
        );
        continue;
      }
      v.forEach((c: unknown, i) => {
        if (!isAddress(c)) problems.push(`${name}[${i}]: "${String(c)}" is not an IP address or CIDR network`);
      });
    }
    for (const name of PORT_VARS) {
      const p = vars[name];
      if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) problems.push(`${name}: must be a port number (1-65535)`);
    }
    if (!['off', 'low', 'medium', 'high', 'full'].includes(String(vars.firewall_logging))) problems.push('firewall_logging: must be off, low, medium, high or full');
    const c = vars.firewall_commit_confirm_seconds;
    if (typeof c !== 'number' || !Number.isInteger(c) || (c !== 0 && (c < 10 || c > 3600))) problems.push('firewall_commit_confirm_seconds: must be 0 (off) or 10-3600');
    if (typeof vars.firewall_allow_locking_out_this_run !== 'boolean') problems.push('firewall_allow_locking_out_this_run: must be true or false');
    if (vars.private_address !== undefined && (typeof vars.private_address !== 'string' || !isAddress(vars.private_address))) {
      problems.push('private_address: must be an IP address');
    }
    problems.push(...extraRuleProblems(vars.firewall_extra_rules));
    return problems;
  },
};
