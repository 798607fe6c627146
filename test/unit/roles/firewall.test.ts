import { describe, expect, test } from 'vitest';
import type { Host } from '../../../src/inventory/index.js';
import { role } from '../../../src/roles/firewall/index.js';
import { firewallRules, type FirewallRule } from '../../../src/roles/firewall/rules.js';
import { privateAddress } from '../../../src/roles/shared.js';
import type { RoleContext } from '../../../src/roles/types.js';
import { problemsOf, roleVarsFor } from './helpers.js';

/** The reference site, small: one load balancer, two web hosts that are also the database pair, one monitoring host. */
const SITE: Record<string, { address: string; groups: string[]; vars?: Record<string, unknown> }> = {
  'lb-01': { address: '10.77.0.10', groups: ['loadbalancers'] },
  'web-01': { address: '10.77.0.11', groups: ['webservers', 'db_primary', 'databases'] },
  'web-02': { address: '10.77.0.12', groups: ['webservers', 'db_replica', 'databases'] },
  'mon-01': { address: '10.77.0.20', groups: ['monitoring'] },
};

const SITE_VARS = { admin_cidrs: ['10.77.0.1/32'], monitoring_cidrs: ['10.77.0.20/32'] };

function host(name: string, site = SITE): Host {
  const h = site[name]!;
  return {
    name,
    address: h.address,
    groups: ['all', ...h.groups],
    vars: h.vars ?? {},
    connection: { user: 'root', port: 22, knownHosts: '/dev/null', acceptNewHostKeys: false, become: false, becomeUser: 'root', connectTimeoutMs: 10_000 },
  };
}

function rulesFor(name: string, vars: Record<string, unknown> = {}, site = SITE): FirewallRule[] {
  const h = host(name, site);
  return firewallRules({
    self: privateAddress(h),
    groups: h.groups,
    vars: roleVarsFor(role, h, { ...SITE_VARS, ...vars }),
    groupAddresses: (g) => Object.keys(site).filter((n) => site[n]!.groups.includes(g)).map((n) => privateAddress(host(n, site))),
  });
}

/** "22 from 10.77.0.1", "80 from any": the rule set as a list a reviewer can read. */
const brief = (rules: FirewallRule[]) => rules.map((r) => `${r.rule} ${r.port}/${r.proto} from ${r.from ?? 'any'}`);

describe('firewall rules from the inventory', () => {
  test('load balancer: web from anywhere, its exporters from monitoring, SSH from the admin only', () => {
    expect(brief(rulesFor('lb-01'))).toEqual([
      'allow 22/tcp from 10.77.0.1',
      'allow 80/tcp from any',
      'allow 443/tcp from any',
      'allow 9100/tcp from 10.77.0.20',
      'allow 8405/tcp from 10.77.0.20',
    ]);
  });

  test('web + primary database: HTTP only from the load balancer, MySQL only from the other database/app host', () => {
    expect(brief(rulesFor('web-01'))).toEqual([
      'allow 22/tcp from 10.77.0.1',
      'allow 80/tcp from 10.77.0.10',
      // web-02 is both the replica and an app host: one rule, and never web-01 itself (that is loopback).
      'allow 3306/tcp from 10.77.0.12',
      // The database health agent: from the other web server only (web-01's own endpoint checks over loopback).
      'allow 9200/tcp from 10.77.0.12',
      'allow 9100/tcp from 10.77.0.20',
      'allow 9113/tcp from 10.77.0.20',
      'allow 9104/tcp from 10.77.0.20',
    ]);
  });

  test('monitoring host: Prometheus from the admins, no web or database port', () => {
    expect(brief(rulesFor('mon-01'))).toEqual(['allow 22/tcp from 10.77.0.1', 'allow 9100/tcp from 10.77.0.20', 'allow 9090/tcp from 10.77.0.1']);
  });

  test('ports come from the shared vars, sources from private addresses, and every admin network gets SSH', () => {
    const site = {
      ...SITE,
      'lb-01': { address: '203.0.113.10', groups: ['loadbalancers'], vars: { private_address: '10.0.0.10' } },
    };
    const rules = rulesFor('web-02', { http_port: 8080, ssh_port: 2222, admin_cidrs: ['10.77.0.1/32', '192.0.2.0/24'] }, site);
    expect(brief(rules)).toContain('allow 8080/tcp from 10.0.0.10');
    expect(brief(rules)).not.toContain('allow 8080/tcp from 203.0.113.10');
    expect(brief(rules).slice(0, 2)).toEqual(['allow 2222/tcp from 10.77.0.1', 'allow 2222/tcp from 192.0.2.0/24']);
  });

  test('app hosts that are not databases reach MySQL too; non-members never', () => {
    const site = {
      ...SITE,
      'app-01': { address: '10.77.0.30', groups: ['webservers'] },
      'db-01': { address: '10.77.0.40', groups: ['databases', 'db_primary'] },
    };
    const mysql = rulesFor('db-01', {}, site).filter((r) => r.port === 3306).map((r) => r.from);
    expect(mysql.sort()).toEqual(['10.77.0.11', '10.77.0.12', '10.77.0.30']);
    expect(rulesFor('app-01', {}, site).some((r) => r.port === 3306 || r.port === 9104)).toBe(false);
  });

  test('databases on their own hosts (prod-split): MySQL from the web servers and the other database host, the health agent from the web servers only', () => {
    const split = {
      'lb-01': { address: '10.77.0.10', groups: ['loadbalancers'] },
      'web-01': { address: '10.77.0.11', groups: ['webservers'] },
      'web-02': { address: '10.77.0.12', groups: ['webservers'] },
      'db-01': { address: '10.77.0.21', groups: ['databases', 'db_primary'] },
      'db-02': { address: '10.77.0.22', groups: ['databases', 'db_replica'] },
      'mon-01': { address: '10.77.0.20', groups: ['monitoring'] },
    };
    expect(brief(rulesFor('db-01', {}, split))).toEqual([
      'allow 22/tcp from 10.77.0.1',
      'allow 3306/tcp from 10.77.0.22',
      'allow 3306/tcp from 10.77.0.11',
      'allow 3306/tcp from 10.77.0.12',
      'allow 9200/tcp from 10.77.0.11',
      'allow 9200/tcp from 10.77.0.12',
      'allow 9100/tcp from 10.77.0.20',
      'allow 9104/tcp from 10.77.0.20',
    ]);
    for (const web of ['web-01', 'web-02', 'lb-01']) expect(rulesFor(web, {}, split).some((r) => r.port === 3306 || r.port === 9200)).toBe(false);
  });

  test('extra rules come last, as given; rules carry comments', () => {
    const extra = { rule: 'allow', port: 51820, proto: 'udp', comment: 'wireguard' } as const;
    const rules = rulesFor('mon-01', { firewall_extra_rules: [extra] });
    expect(rules.at(-1)).toEqual(extra);
    expect(rules[0]).toMatchObject({ comment: 'ssh from admin' });
  });

  test('an admin network written two ways is one rule', () => {
    expect(brief(rulesFor('mon-01', { admin_cidrs: ['10.77.0.1/32', '10.77.0.1'] })).filter((r) => r.startsWith('allow 22/'))).toEqual(['allow 22/tcp from 10.77.0.1']);
  });
});

describe('the firewall task', () => {
  const task = (vars: Record<string, unknown> = {}) => {
    const h = host('web-01');
    const all = roleVarsFor<Parameters<typeof role.tasks>[0]['vars']>(role, h, { ...SITE_VARS, ...vars });
    const ctx: Parameters<typeof role.tasks>[0] = { host: h, facts: {} as RoleContext['facts'], vars: all, inventory: {} as RoleContext['inventory'], hostsIn: () => [], file: (f) => f };
    const tasks = role.tasks(ctx);
    return tasks.find((t) => t.module === 'ufw')!.params as Record<string, unknown>;
  };

  test("this run's own address is guarded unless the inventory says otherwise, in so many words", () => {
    expect(task()).toMatchObject({ allow_locking_out_this_run: false, commit_confirm_seconds: 60, admin_source: '10.77.0.1/32' });
    expect(task({ firewall_allow_locking_out_this_run: true })).toMatchObject({ allow_locking_out_this_run: true });
  });
});

describe('firewall role vars', () => {
  const problems = (vars: Record<string, unknown>) => problemsOf(role, host('web-01'), { ...SITE_VARS, ...vars });

  test('the site vars are fine', () => {
    expect(problems({})).toEqual([]);
  });

  test('no admin network is refused: it would lock everybody out', () => {
    expect(problems({ admin_cidrs: [] })).toEqual([expect.stringMatching(/^admin_cidrs: .*at least one/)]);
    expect(problemsOf(role, host('web-01'), {})).toEqual(expect.arrayContaining([expect.stringMatching(/^admin_cidrs:/), expect.stringMatching(/^monitoring_cidrs:/)]));
  });

  test('bad addresses, ports and extra rules are named', () => {
    expect(problems({ admin_cidrs: ['10.77.0.300/32'] })).toEqual(['admin_cidrs[0]: "10.77.0.300/32" is not an IP address or CIDR network']);
    expect(problems({ http_port: 70000 })).toEqual(['http_port: a TCP port (1-65535), got 70000']);
    expect(problems({ firewall_commit_confirm_seconds: 5 })).toEqual(['firewall_commit_confirm_seconds: must be 0 (off) or 10-3600']);
    expect(problems({ firewall_allow_locking_out_this_run: 'yes' })).toEqual(['firewall_allow_locking_out_this_run: must be true or false']);
    expect(problems({ firewall_extra_rules: [{ rule: 'open', port: 'http', from: 'everyone', src: 'x' }] })).toEqual([
      'firewall_extra_rules[0].rule: must be allow, deny, reject or limit',
      'firewall_extra_rules[0].port: must be a port, a range like 8000:8100 or a list like 80,443',
      'firewall_extra_rules[0].from: must be an IP address, a CIDR network or "any"',
      'firewall_extra_rules[0].src: unknown field (allowed: rule, port, proto, from, to, comment)',
    ]);
  });
});

describe('the load-balancer pair (lb_virtual_ip)', () => {
  const PAIR: typeof SITE = { ...SITE, 'lb-02': { address: '10.77.0.13', groups: ['loadbalancers'] } };

  test('VRRP passes between the pair only, from the peer, and the firewall installs netbase for the protocol name', () => {
    const lb1 = rulesFor('lb-01', { lb_virtual_ip: '10.77.0.100/24' }, PAIR);
    expect(lb1.filter((r) => r.proto === 'vrrp')).toEqual([{ rule: 'allow', proto: 'vrrp', from: '10.77.0.13', comment: 'vrrp from load-balancer peer' }]);
    // lb-01 obtains the pair's ACME certificate: the challenge comes from lb-02 when it holds the address.
    expect(lb1.filter((r) => r.port === 8888)).toEqual([{ rule: 'allow', port: 8888, proto: 'tcp', from: '10.77.0.13', comment: 'acme http-01 from load-balancer peer' }]);
    expect(rulesFor('lb-02', { lb_virtual_ip: '10.77.0.100/24' }, PAIR).some((r) => r.port === 8888)).toBe(false);
    expect(rulesFor('lb-02', { lb_virtual_ip: '10.77.0.100/24' }, PAIR).filter((r) => r.proto === 'vrrp').map((r) => r.from)).toEqual(['10.77.0.10']);
    expect(rulesFor('web-01', { lb_virtual_ip: '10.77.0.100/24' }, PAIR).some((r) => r.proto === 'vrrp')).toBe(false);
    // lb-01 pushes a renewed certificate to lb-02 over SSH: SSH on lb-02 from lb-01 only, nothing the other way.
    expect(rulesFor('lb-02', { lb_virtual_ip: '10.77.0.100/24' }, PAIR).filter((r) => r.comment?.includes('issuer'))).toEqual([
      { rule: 'allow', port: 22, proto: 'tcp', from: '10.77.0.10', comment: 'ssh from the certificate issuer (push)' },
    ]);
    expect(rulesFor('lb-01', { lb_virtual_ip: '10.77.0.100/24' }, PAIR).some((r) => r.port === 22 && r.from === '10.77.0.13')).toBe(false);
    expect(rulesFor('lb-02', {}, PAIR).some((r) => r.port === 22 && r.from === '10.77.0.10')).toBe(false);
    // No floating address: no VRRP rule at all (one load balancer stays the reference site).
    expect(rulesFor('lb-01', {}, PAIR).some((r) => r.proto === 'vrrp')).toBe(false);
    const h = host('lb-01', PAIR);
    const ctx = {
      host: h,
      vars: roleVarsFor(role, h, { ...SITE_VARS, lb_virtual_ip: '10.77.0.100/24' }),
      hostsIn: (g: string) => Object.keys(PAIR).filter((n) => PAIR[n]!.groups.includes(g)).map((n) => host(n, PAIR)),
    } as unknown as Parameters<typeof role.tasks>[0];
    const apt = role.tasks(ctx).find((t) => t.module === 'apt')!;
    expect((apt.params as { packages: string[] }).packages).toEqual(['ufw', 'netbase']);
  });

  test('lb_virtual_ip is an IPv4 address with its prefix length', () => {
    expect(problemsOf(role, host('lb-01'), { ...SITE_VARS, lb_virtual_ip: '10.77.0.100' }).join('\n')).toMatch(/lb_virtual_ip: an IPv4 address with its prefix length/);
    expect(problemsOf(role, host('lb-01'), { ...SITE_VARS, lb_virtual_ip: '10.77.0.100/24' })).toEqual([]);
  });
});
