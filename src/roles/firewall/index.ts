import { z } from 'zod';
import { defineRole } from '../define.js';
import { groupAddresses, privateAddress } from '../shared.js';
import { bool, oneOf, pick, shared, wholeNumber } from '../vars.js';
import { extraRules, firewallRules, needsProtocolNames } from './rules.js';
import { apt, ufw } from '../../modules/tasks.js';

const vars = z.object({
  ...pick(
    'admin_cidrs',
    'monitoring_cidrs',
    'ssh_port',
    'http_port',
    'https_port',
    'mysql_port',
    'db_health_port',
    'node_exporter_port',
    'haproxy_exporter_port',
    'nginx_exporter_port',
    'mysqld_exporter_port',
    'prometheus_port',
    'lb_virtual_ip',
  ),
  private_address: shared('private_address', 'The address peers use (their rules name it).'),
  firewall_extra_rules: extraRules()
    .default([])
    .describe('More ufw rules after the computed ones: `[{ rule: allow|deny|reject|limit, port?, proto?, from?, to?, comment? }]`; ufw takes the first match, and these come last.'),
  firewall_logging: oneOf(['off', 'low', 'medium', 'high', 'full'], 'must be off, low, medium, high or full').default('low').describe("ufw's logging level."),
  firewall_commit_confirm_seconds: wholeNumber(0, 3600, 'must be 0 (off) or 10-3600')
    .refine((n) => n === 0 || n >= 10, { error: 'must be 0 (off) or 10-3600' })
    .default(60)
    .describe('Changes to an active firewall roll back by themselves unless a new SSH login succeeds within this many seconds; `0` turns commit-confirm off, else 10-3600.'),
  firewall_allow_locking_out_this_run: bool('must be true or false')
    .default(false)
    .describe(
      'The ufw task refuses a rule set under which the address this run connects from (SSH_CONNECTION on the host) could not log in again. ' +
        '`true` applies it anyway: for moving administration to another address on purpose (with commit-confirm on, the failed new login ' +
        'still rolls it back, so set `firewall_commit_confirm_seconds: 0` for that run too).',
    ),
});

export const role = defineRole({
  name: 'firewall',
  description:
    'ufw on every host, with a rule set computed from the inventory: default deny incoming, allow outgoing, and each port open only ' +
    'to the hosts that use it. The host converges to *exactly* this set (`purge_other_rules`): a rule someone added by hand is ' +
    'deleted on the next run.',
  vars,
  tasks(ctx) {
    const v = ctx.vars;
    const admin = v.admin_cidrs[0]!;
    const confirm = v.firewall_commit_confirm_seconds;
    const rules = firewallRules({
      self: privateAddress(ctx.host),
      groups: ctx.host.groups,
      vars: v,
      groupAddresses: (g) => groupAddresses(ctx, g),
    });
    return [
      apt('install ufw', { packages: needsProtocolNames(rules) ? ['ufw', 'netbase'] : ['ufw'] }),
      // Exactly these rules (others purged); ufw adds them before it enables or changes defaults,
      // and the module refuses a rule set without SSH from the admin source or from this run's own address.
      ufw('firewall rules and policy', {
        state: 'enabled',
        default_incoming: 'deny',
        default_outgoing: 'allow',
        default_routed: 'deny',
        logging: v.firewall_logging,
        rules,
        purge_other_rules: true,
        admin_source: admin,
        ssh_port: v.ssh_port,
        allow_locking_out_this_run: v.firewall_allow_locking_out_this_run,
        ...(confirm > 0 ? { commit_confirm_seconds: confirm } : {}),
      }),
    ];
  },
});
