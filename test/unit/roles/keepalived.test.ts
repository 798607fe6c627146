/** The keepalived role without a host: what it renders for each side of the pair, and its var checks. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import { renderTemplate, type Task } from '../../../src/modules/index.ts';
import { role, vrrpPriority } from '../../../src/roles/keepalived/index.ts';
import { Secret } from '../../../src/util/secrets.ts';
import { problemsOf, roleVarsFor } from './helpers.ts';

const host = (name: string, address: string, groups: string[]): Host => ({ name, address, groups, vars: {}, connection: {} }) as unknown as Host;
const lbs = [host('lb-01', '10.9.0.10', ['loadbalancers']), host('lb-02', '10.9.0.13', ['loadbalancers'])];
const pass = new Secret('keepalived_auth_pass', 'pair-pw1');
const PAIR = { lb_virtual_ip: '203.0.113.100/24', keepalived_auth_pass: pass };

function expand(h: Host, vars: Record<string, unknown> = PAIR): Task[] {
  return role.tasks({
    host: h,
    facts: {} as Facts,
    vars: roleVarsFor<Parameters<typeof role.tasks>[0]["vars"]>(role, h, vars),
    inventory: {} as Inventory,
    hostsIn: (g) => (g === 'loadbalancers' ? lbs : []),
    file: (rel) => path.resolve(import.meta.dirname, '../../../src/roles/keepalived', rel),
  });
}

function conf(tasks: Task[]): string {
  const t = tasks.find((x) => x.module === 'template')!;
  const p = t.params as { src: string; vars: Record<string, unknown> };
  return renderTemplate(p.src, p.vars);
}

describe('keepalived role', () => {
  it('unicast to the peer, from its own address, both BACKUP with nopreempt, the first preferred', () => {
    const one = conf(expand(lbs[0]!));
    expect(one).toMatch(/state BACKUP\n\s+nopreempt\n/);
    expect(one).toContain('unicast_src_ip 10.9.0.10');
    expect(one).toMatch(/unicast_peer \{\n\s+10\.9\.0\.13\n\s+\}/);
    expect(one).toContain('priority 150');
    expect(one).toContain('203.0.113.100/24 dev eth0');
    const two = conf(expand(lbs[1]!));
    expect(two).toMatch(/unicast_peer \{\n\s+10\.9\.0\.10\n\s+\}/);
    expect(two).toContain('priority 100');
    expect(vrrpPriority(5)).toBe(1);
  });

  it('follows HAProxy: a failing check takes this side out, and scripts run as root only if root owns them', () => {
    const c = conf(expand(lbs[0]!));
    expect(c).toContain('script "/usr/bin/systemctl is-active --quiet haproxy.service"');
    expect(c).toMatch(/track_script \{\n\s+haproxy_running\n/);
    expect(c).toContain('enable_script_security');
    // A weight would only lower the priority, which nopreempt ignores: without one a failure means FAULT.
    expect(c).not.toMatch(/\bweight\b/);
  });

  it('authenticates the pair with the password one item per line, in a 0600 file never shown in a diff', () => {
    const tasks = expand(lbs[0]!);
    expect(conf(tasks)).toMatch(/authentication \{\n\s+auth_type PASS\n\s+auth_pass pair-pw1\n\s+\}/);
    const t = tasks.find((x) => x.module === 'template')!.params as { mode: string; sensitive: boolean; validate: string };
    expect(t.mode).toBe('0600');
    expect(t.sensitive).toBe(true);
    expect(t.validate).toBe('keepalived --config-test -f %s');
  });

  it('does nothing without a floating address (one load balancer)', () => {
    expect(expand(lbs[0]!, {})).toEqual([]);
  });

  it('refuses a missing or unusable password before any connection', () => {
    expect(problemsOf(role, lbs[0]!, { lb_virtual_ip: '203.0.113.100/24' }).join('\n')).toMatch(/keepalived_auth_pass: required with lb_virtual_ip/);
    expect(problemsOf(role, lbs[0]!, { ...PAIR, keepalived_auth_pass: new Secret('k', 'much-too-long') }).join('\n')).toMatch(/keepalived_auth_pass: 1-8 letters/);
    expect(problemsOf(role, lbs[0]!, { ...PAIR, keepalived_auth_pass: 'clear' }).join('\n')).toMatch(/keepalived_auth_pass: must be a !secret/);
    expect(problemsOf(role, lbs[0]!, PAIR)).toEqual([]);
  });
});
