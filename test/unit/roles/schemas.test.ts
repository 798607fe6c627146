/**
 * The roles' vars schemas against what the roles did before them (fixtures taken at 3c9502f):
 * the same vars with the same defaults, every old problem still reported — all at once, each
 * with the file:line:col of its var — and the shared vars defined once.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { parseInventory } from '../../../src/inventory/index.ts';
import '../../../src/roles/builtin.ts';
import { checkRoleVars, getRole, roleNames, RoleVarsError } from '../../../src/roles/index.ts';
import { defaultOf, SHARED } from '../../../src/roles/vars.ts';

const here = import.meta.dirname;
const OLD = JSON.parse(readFileSync(path.join(here, 'old-defaults.json'), 'utf8')) as Record<string, { keys: string[]; defaults: Record<string, unknown> }>;
interface Case {
  name: string;
  groups: string[];
  vars: Record<string, unknown>;
  old: string[];
}
const CASES = JSON.parse(readFileSync(path.join(here, 'var-cases.json'), 'utf8')) as Record<string, Case[]>;
const SECRETS: Record<string, string> = {
  mysql_app_password: 'app-secret-12345',
  mysql_exporter_password: 'exporter-secret-1',
  quoted: 'has"quote-secret',
  token: 'token-secret-1',
  pw: 'password-secret-1',
  short: 'short-pw',
  long: 'a-replication-password-of-40-characters!',
};
const env = Object.fromEntries(Object.entries(SECRETS).map(([k, v]) => [`PROVISION_SECRET_${k.toUpperCase()}`, v]));

/** A value in YAML flow style; { "!secret": name } becomes the tag. */
function yaml(v: unknown): string {
  if (v && typeof v === 'object' && !Array.isArray(v) && '!secret' in v) return `!secret ${(v as Record<string, string>)['!secret']}`;
  if (Array.isArray(v)) return `[${v.map(yaml).join(', ')}]`;
  if (v && typeof v === 'object') return `{ ${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${yaml(x)}`).join(', ')} }`;
  return JSON.stringify(v);
}

/** The case as an inventory: host h1 with the case's vars as host vars, one var a line. */
function inventoryText(c: Case): string {
  const vars = Object.entries(c.vars).map(([k, v]) => `      ${k}: ${yaml(v)}`);
  return ['hosts:', '  h1:', '    address: 10.0.0.1', `    groups: [${c.groups.join(', ')}]`, `    vars:${vars.length ? '' : ' {}'}`, ...vars, ''].join('\n');
}

/** What the run would refuse before connecting: the problem lines (none when the vars are fine). */
function problems(role: string, c: Case): string[] {
  const inventory = parseInventory(inventoryText(c), 'vars.yml', env);
  try {
    checkRoleVars(inventory, { plays: [{ name: 'p', hosts: 'all', roles: [role], vars: {} }] }, ['h1']);
    return [];
  } catch (err) {
    if (!(err instanceof RoleVarsError)) throw err;
    return err.problems;
  }
}

const PROBLEM = /^vars\.yml(?::(\d+):(\d+))?: ([A-Za-z_][\w.[\]]*): (.+) \(host h1; role [a-z_]+\)$/;
const fieldOf = (old: string) => old.slice(0, old.indexOf(': '));
const converted = roleNames();

describe('every role declares the vars it declared before, with the same defaults', () => {
  it.each(roleNames())('%s', (name) => {
    const shape = getRole(name)!.vars.shape as Record<string, z.ZodType>;
    const old = OLD[name]!;
    expect(Object.keys(shape).sort()).toEqual([...old.keys].sort());
    const defaults = Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, defaultOf(s)]));
    // admin_cidrs and monitoring_cidrs defaulted to [], which validate() refused: now they are required, without a default.
    const expected = { ...old.defaults };
    if (name === 'firewall') {
      expect([expected.admin_cidrs, expected.monitoring_cidrs]).toEqual([[], []]);
      delete expected.admin_cidrs;
      delete expected.monitoring_cidrs;
    }
    expect(JSON.parse(JSON.stringify(defaults))).toEqual(expected);
  });
});

describe('each role schema reports every problem validate() reported, at once, where the var is set', () => {
  for (const role of converted) {
    describe(role, () => {
      it.each(CASES[role]!.map((c) => [c.name, c] as const))('%s', (_name, c) => {
        const found = problems(role, c);
        const parsed = found.map((line) => {
          const m = PROBLEM.exec(line);
          expect(m, line).not.toBeNull();
          return { line: m![1] && Number(m![1]), col: m![2] && Number(m![2]), field: m![3]!, message: m![4]! };
        });
        // Every old problem is still there: on the same var, or more precisely inside it (app_packages[0]).
        const at = (old: string) => (f: string) => f === old || f.startsWith(`${old}[`) || f.startsWith(`${old}.`);
        for (const old of c.old) expect(parsed.some((p) => at(fieldOf(old))(p.field)), `old problem "${old}" not reported; now:\n${found.join('\n')}`).toBe(true);
        if (c.old.length === 0) expect(found).toEqual([]);
        // Each problem with a var the inventory sets points at that var's line in the file.
        const text = inventoryText(c).split('\n');
        for (const p of parsed) {
          const name = p.field.replace(/[.[].*$/, '');
          const lineOfVar = text.findIndex((l) => l.startsWith(`      ${name}: `)) + 1;
          if (lineOfVar === 0) expect(p.line, `${p.field} is not set: no line`).toBe(undefined);
          else expect(p.line, `${p.field} should point at line ${lineOfVar}`).toBe(lineOfVar);
        }
      });
    });
  }

  it('one var wrong in several ways, and a rule across vars, all in one error with positions', () => {
    const c = CASES.haproxy!.find((x) => x.name === 'every field wrong')!;
    expect(problems('haproxy', { ...c, vars: { ...c.vars, https_port: 0 } })).toEqual([
      'vars.yml:6:15: domain: a fully qualified DNS name like www.example.com, got "-bad-.example" (host h1; role haproxy)',
      'vars.yml:7:18: http_port: a TCP port (1-65535), got 0 (host h1; role haproxy)',
      'vars.yml:8:19: https_port: a TCP port (1-65535), got 0 (host h1; role haproxy)',
      'vars.yml:8:19: https_port: must differ from http_port (host h1; role haproxy)',
      'vars.yml:9:30: haproxy_exporter_port: a TCP port (1-65535), got 70000 (host h1; role haproxy)',
      'vars.yml:10:24: haproxy_balance: one of roundrobin, leastconn, source, first, got "random" (host h1; role haproxy)',
      'vars.yml:11:20: backend_tls: true or false, got "yes" (host h1; role haproxy)',
      'vars.yml:12:28: haproxy_health_path: an absolute URL path like /health (host h1; role haproxy)',
      'vars.yml:13:31: haproxy_check_interval: a whole number ≥ 1 (host h1; role haproxy)',
      'vars.yml:14:24: haproxy_maxconn: a whole number ≥ 1 (host h1; role haproxy)',
      'vars.yml:15:33: haproxy_placeholder_days: a whole number ≥ 1 (host h1; role haproxy)',
      'vars.yml:16:21: haproxy_hsts: "max-age=SECONDS" (optionally "; includeSubDomains", "; preload") or "" for none (host h1; role haproxy)',
      'vars.yml:17:28: haproxy_ssl_ciphers: an OpenSSL cipher list (names separated by ":") (host h1; role haproxy)',
    ]);
  });

  it('a rule on the host (its groups) comes with the schema problems, and a missing secret hides no rule', () => {
    const found = problems('mysql', { name: 'both groups', groups: ['db_primary', 'db_replica'], vars: {}, old: [] });
    expect(found).toEqual([
      'vars.yml: mysql_app_password: required, as a !secret (mysql_app_password: !secret mysql_app_password) (host h1; role mysql)',
      'vars.yml: mysql_replication_password: required, as a !secret (mysql_replication_password: !secret mysql_replication_password) (host h1; role mysql)',
      'vars.yml: mysql_exporter_password: required, as a !secret (mysql_exporter_password: !secret mysql_exporter_password) (host h1; role mysql)',
      'vars.yml: host is in both db_primary and db_replica (host h1; role mysql)',
    ]);
  });

  it('a secret in clear is refused without showing it', () => {
    const found = problems('app', { name: 'clear', groups: ['webservers'], vars: { mysql_app_password: 'hunter2-clear' }, old: [] });
    expect(found).toEqual(['vars.yml:6:27: mysql_app_password: must be a !secret (mysql_app_password: !secret mysql_app_password), not a value in clear (host h1; role app)']);
    expect(found.join('\n')).not.toContain('hunter2');
  });
});

describe('shared vars are defined once', () => {
  it('a var read by several roles is one of the shared vars, with one default', () => {
    const readers = new Map<string, string[]>();
    for (const r of converted) for (const k of Object.keys(getRole(r)!.vars.shape)) readers.set(k, [...(readers.get(k) ?? []), r]);
    const notShared = [...readers].filter(([k, rs]) => rs.length > 1 && !(k in SHARED)).map(([k, rs]) => `${k} (${rs.join(', ')})`);
    expect(notShared).toEqual([]);
    for (const [k] of readers) {
      if (!(k in SHARED)) continue;
      for (const r of readers.get(k)!) expect(defaultOf(getRole(r)!.vars.shape[k] as z.ZodType), `${r}.${k}`).toEqual(defaultOf(SHARED[k as keyof typeof SHARED]));
    }
  });

  it('a shared check is the same in every role: a bad port gets one message, wherever it is read', () => {
    const c: Case = { name: 'port', groups: ['webservers', 'loadbalancers', 'monitoring'], vars: { http_port: 70000 }, old: [] };
    const msgs = new Set(['firewall', 'haproxy', 'nginx'].flatMap((r) => problems(r, c)).filter((l) => l.includes('http_port')).map((l) => l.replace(/ \(host.*$/, '')));
    expect([...msgs]).toEqual(['vars.yml:6:18: http_port: a TCP port (1-65535), got 70000']);
  });
});
