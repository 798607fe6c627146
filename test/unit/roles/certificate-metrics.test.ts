/**
 * The certificates watched (issue 17 item 3, issue 16 item 6) without a host: which certificates a
 * host's groups imply, the textfile script run for real by sh with the real openssl, and the
 * prometheus role's alert rules file (checked by promtool before it goes live).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import { renderTemplate, type Task } from '../../../src/modules/index.ts';
import { hostCertificates } from '../../../src/roles/monitoring/certificates.ts';
import { role as monitoring } from '../../../src/roles/monitoring/index.ts';
import { role as prometheus } from '../../../src/roles/prometheus/index.ts';
import { ALERT_RULES_FILE, alertRules } from '../../../src/roles/prometheus/rules.ts';
import { problemsOf, roleVarsFor } from './helpers.ts';

const host = (name: string, groups: string[]): Host => ({ name, address: '10.9.0.5', groups: ['all', ...groups], vars: {}, connection: {} }) as unknown as Host;

function tasksOf(role: typeof monitoring | typeof prometheus, h: Host, vars: Record<string, unknown>, groups: Record<string, Host[]> = {}): Task[] {
  return role.tasks({
    host: h,
    facts: {} as Facts,
    vars: roleVarsFor<never>(role, h, vars),
    inventory: { name: 'prod', file: '/tmp/prod.yml', hosts: new Map([[h.name, h]]), groups: new Map() } as unknown as Inventory,
    hostsIn: (g: string) => groups[g] ?? [],
    file: (rel: string) => path.resolve(import.meta.dirname, `../../../src/roles/${role.name}`, rel),
  } as never);
}

const rendered = (t: Task) => {
  const p = t.params as { src: string; vars: Record<string, unknown> };
  return renderTemplate(p.src, p.vars);
};

describe('which certificates a host has', () => {
  const v = roleVarsFor<Parameters<typeof hostCertificates>[1]>(monitoring, host('x', []), { domain: 'shop.example.com' });

  it('from its groups: HAProxy PEM on a load balancer, the backend certificate on a web server, the database one on a db host', () => {
    expect(hostCertificates(['all', 'loadbalancers'], v)).toEqual([{ role: 'public', path: '/etc/haproxy/certs/shop.example.com.pem' }]);
    expect(hostCertificates(['all', 'webservers'], v).map((c) => `${c.role} ${c.path}`)).toEqual(['backend /etc/nginx/tls/backend.pem', 'backend /etc/nginx/tls/backend.crt']);
    expect(hostCertificates(['all', 'webservers'], { ...v, backend_tls: false })).toEqual([]);
    expect(hostCertificates(['all', 'databases'], v)).toEqual([{ role: 'db', path: '/etc/mysql/tls/server.pem' }]);
    expect(hostCertificates(['all', 'monitoring'], v)).toEqual([]);
    const extra = { role: 'backend' as const, path: '/etc/ssl/own.pem' };
    expect(hostCertificates(['all', 'monitoring'], { ...v, monitored_certificates: [extra, extra] })).toEqual([extra]);
  });

  it('a host without a certificate gets no timer; one with them gets script, units, timer and a run only when stale', () => {
    expect(tasksOf(monitoring, host('mon-01', ['monitoring']), {}).map((t) => t.name)).not.toContain('certificate metrics timer');
    const tasks = tasksOf(monitoring, host('lb-01', ['loadbalancers']), { domain: 'shop.example.com' });
    const names = tasks.map((t) => t.name);
    // The run before the timer: a timer started for the first time may run the service at once.
    expect(names.slice(-5)).toEqual([
      'certificate metrics script',
      'certificate metrics service',
      'certificate metrics timer',
      'certificate metrics are current',
      'certificate metrics timer',
    ]);
    // Debian's package makes its own textfile folder; another one is made by the role.
    expect(names).not.toContain('textfile collector folder');
    const custom = tasksOf(monitoring, host('lb-01', ['loadbalancers']), { domain: 'shop.example.com', node_exporter_textfile_dir: '/srv/textfile' }).map((t) => t.name);
    expect(custom).toContain('textfile collector folder');
    const run = tasks.find((t) => t.name === 'certificate metrics are current')!.params as { cmd: string; unless: string };
    expect(run.unless).toBe(`${run.cmd} --check`);
    // The node exporter reads the folder the script writes to.
    const nodeDefaults = rendered(tasks.find((t) => t.name === 'prometheus-node-exporter options')!);
    expect(nodeDefaults).toContain('--collector.textfile.directory=/var/lib/prometheus/node-exporter');
  });

  it('refuses a watched path that would break the metric label or the script', () => {
    expect(problemsOf(monitoring, host('lb-01', []), { monitored_certificates: [{ path: '/etc/a"b.pem', role: 'public' }] })).toEqual([
      'monitored_certificates[0].path: an absolute path of letters, digits and . _ / @ + - only',
    ]);
    expect(problemsOf(monitoring, host('lb-01', []), { monitored_certificates: [{ path: '/etc/a.pem', role: 'web' }] })).toEqual(['monitored_certificates[0].role: one of public, backend, db']);
  });
});

describe('the textfile script, run by sh with the real openssl', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'w4-certmetrics-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const textfiles = path.join(dir, 'textfile');
  const bin = path.join(dir, 'bin');
  mkdirSync(textfiles);
  mkdirSync(bin);
  const cert = (name: string, days: number) => {
    const out = path.join(dir, `${name}.pem`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days), '-subj', `/CN=${name}`, '-keyout', path.join(dir, `${name}.key`), '-out', out], { stdio: 'ignore' });
    return out;
  };
  const soon = cert('soon', 10);
  const later = cert('later', 90);
  const broken = path.join(dir, 'broken.pem');
  writeFileSync(broken, 'not a certificate\n');
  // systemctl as the script sees it: certbot is installed and its last run failed (or not).
  const fakeSystemctl = (failed: boolean) => {
    writeFileSync(path.join(bin, 'systemctl'), `#!/bin/sh\ncase "$1" in cat) exit 0;; is-failed) exit ${failed ? 0 : 1};; esac\nexit 1\n`);
    chmodSync(path.join(bin, 'systemctl'), 0o755);
  };
  const script = path.join(dir, 'metrics.sh');
  writeFileSync(
    script,
    renderTemplate(path.resolve(import.meta.dirname, '../../../src/roles/monitoring/templates/certificate-metrics.sh.njk'), {
      textfile_dir: textfiles,
      certificates: [
        { role: 'public', path: soon },
        { role: 'backend', path: later },
        { role: 'db', path: broken },
        { role: 'backend', path: path.join(dir, 'missing.pem') },
      ],
    }),
  );
  const run = (...args: string[]) => spawnSync('sh', [script, ...args], { env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
  const out = path.join(textfiles, 'provision_certificates.prom');
  const end = (pem: string) => Math.floor(new Date(new X509Certificate(readFileSync(pem)).validTo).getTime() / 1000);

  it('writes each certificate end, 0 for an unreadable one, nothing for a missing one, and the renewal state; no temporary file left', () => {
    fakeSystemctl(true);
    expect(run().status).toBe(0);
    const lines = readFileSync(out, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines).toEqual([
      `provision_certificate_expiry_timestamp_seconds{path="${soon}",role="public"} ${end(soon)}`,
      `provision_certificate_expiry_timestamp_seconds{path="${later}",role="backend"} ${end(later)}`,
      `provision_certificate_expiry_timestamp_seconds{path="${broken}",role="db"} 0`,
      'provision_certificate_renewal_failed 1',
    ]);
    expect(readdirSync(textfiles)).toEqual(['provision_certificates.prom']);
  });

  it('--check: 0 while the file says what a run would write, 1 once something changed (and writes nothing)', () => {
    fakeSystemctl(true);
    run();
    expect(run('--check').status).toBe(0);
    fakeSystemctl(false); // the renewal succeeded since
    const before = readFileSync(out, 'utf8');
    expect(run('--check').status).toBe(1);
    expect(readFileSync(out, 'utf8')).toBe(before);
    run();
    expect(readFileSync(out, 'utf8')).toContain('provision_certificate_renewal_failed 0');
  });

  it('no renewal metric where certbot is not installed', () => {
    writeFileSync(path.join(bin, 'systemctl'), '#!/bin/sh\nexit 1\n');
    run();
    expect(readFileSync(out, 'utf8')).not.toContain('renewal_failed');
  });
});

describe('the alert rules (prometheus role)', () => {
  const mon = host('mon-01', ['monitoring']);

  it('are written before the scrape configuration that names them, checked by promtool on the host first', () => {
    const tasks = tasksOf(prometheus, mon, {}, { databases: [host('db-01', ['databases'])] });
    const rules = tasks.findIndex((t) => t.name === 'prometheus alert rules');
    const config = tasks.findIndex((t) => t.name === 'prometheus scrape configuration');
    expect(rules).toBeGreaterThan(0);
    expect(rules).toBeLessThan(config);
    const p = tasks[rules]!.params as { dest: string; validate: string; content: string };
    expect(p).toMatchObject({ dest: ALERT_RULES_FILE, validate: 'promtool check rules %s' });
    expect(parse(p.content).groups.map((g: { name: string }) => g.name)).toEqual(['provision-certificates', 'provision-database']);
    expect(rendered(tasks[config]!)).toContain(`rule_files:\n  - "${ALERT_RULES_FILE}"\n`);
  });

  it('without database hosts: no database rules (MysqlNoWritablePrimary would fire on nothing)', () => {
    const p = tasksOf(prometheus, mon, {}).find((t) => t.name === 'prometheus alert rules')!.params as { content: string };
    expect(parse(p.content).groups.map((g: { name: string }) => g.name)).toEqual(['provision-certificates']);
  });

  it('the bounds are vars', () => {
    const text = JSON.stringify(alertRules({ publicCertificateDays: 7, internalCertificateDays: 20, replicationLagSeconds: 90, databases: true, extra: [] }));
    expect(text).toContain('{role=\\"public\\"} - time() < 604800');
    expect(text).toContain('- time() < 1728000');
    expect(text).toContain('mysql_slave_status_seconds_behind_master > 90');
  });

  it('a rule of your own is checked for shape here (its PromQL by promtool on the host)', () => {
    expect(problemsOf(prometheus, mon, { prometheus_alert_rules_extra: [{ alert: 'bad name', expr: 'up == 0' }] })).toEqual([
      'prometheus_alert_rules_extra[0].alert: an alert name (letters, digits, _)',
    ]);
    expect(problemsOf(prometheus, mon, { prometheus_alert_rules_extra: [{ alert: 'HostDown', expr: 'up == 0', for: '5m', labels: { severity: 'page' } }] })).toEqual([]);
  });
});
