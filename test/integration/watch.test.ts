/**
 * Certificates and the data tier watched by Prometheus, on a real host (issue 17 item 3, issue 16
 * item 6). Instance `w4watch` (10.115.0.0/24), one host, mon-01, converged by the real CLI with the
 * monitoring and prometheus roles: it watches two certificates of its own (`monitored_certificates`,
 * one ending in 10 days) and has a certbot.service whose last run failed.
 *
 * - The certificate metrics: the textfile the script writes (converge and timer), served by the node
 *   exporter, scraped by Prometheus, whose alert rules then go pending/firing.
 * - The rule tests (`promtool test rules`, test/prometheus/) run with Debian's promtool on the host,
 *   and fail on a rules file with a wrong bound (they can fail).
 * - A bad rule (`prometheus_alert_rules_extra`) fails the run and leaves the live rules file and
 *   Prometheus as they were.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { ALERT_RULES_FILE, alertRulesYaml, type AlertRuleOptions } from '../../src/roles/prometheus/rules.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { failures, onConsole, pollUntil, recap, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'w4watch';
const PREFIX = '10.115.0';
const MON = `${PREFIX}.20`;
const RUN_BOUND_MS = 600_000;
const TEXTFILE = '/var/lib/prometheus/node-exporter/provision_certificates.prom';
const SOON = '/etc/provision-test/soon.pem';
const LATER = '/etc/provision-test/later.pem';
const DEFAULT_RULES: AlertRuleOptions = { publicCertificateDays: 14, internalCertificateDays: 30, replicationLagSeconds: 30, databases: true, extra: [] };

let dir: string;
let playbook: string;

const sh = (script: string, timeoutMs = 60_000) => onConsole(NAME, 'mon-01', script, timeoutMs);

function inventory(extraVars = ''): string {
  return writeInventory(dir, NAME, '', {
    hosts: `  mon-01: { address: ${MON}, groups: [monitoring] }\n`,
    tail: `vars:
  monitored_certificates:
    - { path: ${SOON}, role: public }
    - { path: ${LATER}, role: backend }
${extraVars}`,
  });
}

const run = (inv: string): Promise<CliResult> => provision(['-i', inv, '-p', playbook, '--json'], { timeoutMs: RUN_BOUND_MS });

/** A self-signed certificate made on the control machine with the real openssl. */
function certificate(name: string, days: number): string {
  const key = path.join(dir, `${name}.key`);
  const out = path.join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', String(days), '-subj', `/CN=${name}`, '-keyout', key, '-out', out], { stdio: 'ignore' });
  return readFileSync(out, 'utf8');
}
const notAfter = (pem: string) => Math.floor(new Date(new X509Certificate(pem).validTo).getTime() / 1000);

async function put(file: string, content: string): Promise<void> {
  const r = await sh(`mkdir -p ${path.dirname(file)} && cat > ${file} <<'EOF'\n${content}EOF`);
  expect(r.code, r.stderr).toBe(0);
}

/** GET a URL on mon-01 itself (the base image has python3, not curl). */
async function httpGet(url: string): Promise<string> {
  const r = await sh(`python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' '${url}'`, 20_000);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

async function fromPrometheus<T>(api: string): Promise<T> {
  return (JSON.parse(await httpGet(`http://${MON}:9090/api/v1/${api}`)) as { data: T }).data;
}

let soonPem: string;
let laterPem: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-watch-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['mon-01'], pebble: false });
  playbook = writePlaybook(
    dir,
    `- name: collectors
  hosts: all
  roles: [monitoring]
- name: server
  hosts: monitoring
  roles: [prometheus]
`,
  );
  soonPem = certificate('soon', 10);
  laterPem = certificate('later', 90);
  await put(SOON, soonPem);
  await put(LATER, laterPem);
  // certbot as the script sees it: a certbot.service whose last run failed.
  const unit = await sh(
    "printf '[Service]\\nType=oneshot\\nExecStart=/bin/false\\n' > /etc/systemd/system/certbot.service && systemctl daemon-reload && " +
      '{ systemctl start certbot.service || true; } && systemctl is-failed certbot.service',
  );
  expect(unit.stdout.trim()).toBe('failed');
  // A bound, not a speed claim: booting the host and its console under a loaded machine took more than 120 s once.
}, 300_000);

afterAll(async () => {
  await labDown(NAME);
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('certificate metrics, from the host to a Prometheus alert', () => {
  let first: CliResult;

  it('a converge writes the textfile (each end, the failed renewal) and starts its timer', async () => {
    first = await run(inventory());
    expect(first.code, first.stdout.slice(-3000) + first.stderr).toBe(2);
    const text = await sh(`stat -c '%a %U' ${TEXTFILE}; cat ${TEXTFILE}; ls -A ${path.dirname(TEXTFILE)} | grep -c '^provision_certificates' || true`);
    expect(text.stdout).toContain('644 root');
    expect(text.stdout).toContain(`provision_certificate_expiry_timestamp_seconds{path="${SOON}",role="public"} ${notAfter(soonPem)}`);
    expect(text.stdout).toContain(`provision_certificate_expiry_timestamp_seconds{path="${LATER}",role="backend"} ${notAfter(laterPem)}`);
    expect(text.stdout).toContain('provision_certificate_renewal_failed 1');
    // One file of ours, no temporary one left beside it: it was renamed into place.
    expect(text.stdout.trim().split('\n').at(-1)).toBe('1');
    const timer = await sh('systemctl is-enabled provision-certificate-metrics.timer; systemctl is-active provision-certificate-metrics.timer');
    expect(timer.stdout.split('\n').slice(0, 2)).toEqual(['enabled', 'active']);
  }, RUN_BOUND_MS);

  it('the node exporter serves them', async () => {
    const page = await httpGet(`http://${MON}:9100/metrics`);
    // The exporter prints values in Go's float notation (1.796701312e+09): compared as numbers.
    const value = (series: string) => {
      const line = page.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value(`provision_certificate_expiry_timestamp_seconds{path="${SOON}",role="public"}`)).toBe(notAfter(soonPem));
    expect(value(`provision_certificate_expiry_timestamp_seconds{path="${LATER}",role="backend"}`)).toBe(notAfter(laterPem));
    expect(value('provision_certificate_renewal_failed')).toBe(1);
    expect(value('node_textfile_scrape_error')).toBe(0);
  });

  it('Prometheus loaded the rules and raises the certificate alerts (pending or firing): 10 days left, the failed renewal; not the 90-day one', async () => {
    const rules = await fromPrometheus<{ groups: Array<{ name: string; rules: Array<{ name: string }> }> }>('rules');
    expect(rules.groups.flatMap((g) => g.rules.map((r) => r.name))).toEqual(['PublicCertificateExpiringSoon', 'InternalCertificateExpiringSoon', 'CertificateRenewalFailed']);
    type Alert = { labels: Record<string, string>; state: string };
    const wanted = ['CertificateRenewalFailed', 'PublicCertificateExpiringSoon'];
    const alerts = await pollUntil(async () => {
      const a = (await fromPrometheus<{ alerts: Alert[] }>('alerts')).alerts;
      return wanted.every((w) => a.some((x) => x.labels.alertname === w)) ? a : undefined;
    }, 150_000, 5000);
    expect(alerts, 'alerts seen within 150 s').toBeDefined();
    expect(alerts!.filter((a) => a.labels.alertname === 'PublicCertificateExpiringSoon').map((a) => a.labels.path)).toEqual([SOON]);
    expect(alerts!.some((a) => a.labels.alertname === 'InternalCertificateExpiringSoon')).toBe(false);
  }, 200_000);

  it('a second converge changes nothing', async () => {
    const r = await run(inventory());
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(0);
    expect(recap(r)['mon-01']!.changed).toBe(0);
  }, RUN_BOUND_MS);

  it('a renewed certificate is in the textfile at the timer service\'s next run; drift says the metrics are stale until then', async () => {
    const renewed = certificate('soon-renewed', 80);
    await put(SOON, renewed);
    const d = await provision(['drift', '-i', inventory(), '-p', playbook, '--json'], { timeoutMs: RUN_BOUND_MS });
    expect(d.code, d.stdout.slice(-2000) + d.stderr).toBe(2);
    const drift = d.events.find((x) => x.kind === 'drift') as { hosts: Record<string, { changes: string[] }> };
    expect(drift.hosts['mon-01']!.changes.join('\n')).toContain('certificate metrics are current');
    const r = await sh('systemctl start provision-certificate-metrics.service && cat ' + TEXTFILE);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`provision_certificate_expiry_timestamp_seconds{path="${SOON}",role="public"} ${notAfter(renewed)}`);
  }, RUN_BOUND_MS);
});

describe('the rules, tested and guarded by promtool on the host', () => {
  /** Run `promtool test rules` on mon-01 against a rules file rendered here. */
  async function ruleTests(rules: string): Promise<{ code: number; out: string }> {
    const tests = readFileSync(path.resolve(import.meta.dirname, '../prometheus/provision-alerts.test.yml'), 'utf8');
    await put('/root/rule-tests/provision-alerts.yml', rules);
    await put('/root/rule-tests/provision-alerts.test.yml', tests);
    const r = await sh('cd /root/rule-tests && promtool test rules provision-alerts.test.yml', 60_000);
    return { code: r.code, out: r.stdout + r.stderr };
  }

  it('the rule tests pass with the role\'s rules (databases included)', async () => {
    const r = await ruleTests(alertRulesYaml(DEFAULT_RULES));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('SUCCESS');
  });

  it('the rule tests fail on rules with a wrong bound (they can fail)', async () => {
    const r = await ruleTests(alertRulesYaml({ ...DEFAULT_RULES, publicCertificateDays: 21, replicationLagSeconds: 60 }));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('PublicCertificateExpiringSoon');
    expect(r.out).toContain('MysqlReplicationLagging');
  });

  it('a bad rule fails the run; the live rules file and Prometheus stay as they were', async () => {
    const before = await sh(`sha256sum ${ALERT_RULES_FILE}`);
    const r = await run(
      inventory(`  prometheus_alert_rules_extra:
    - { alert: Broken, expr: 'rate(up[5m]' }
`),
    );
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(1);
    const failed = failures(r, 'mon-01');
    expect(failed.map((f) => f.task)).toEqual(['prometheus alert rules']);
    expect(JSON.stringify(failed[0])).toMatch(/promtool check rules|validat/i);
    expect((await sh(`sha256sum ${ALERT_RULES_FILE}`)).stdout).toBe(before.stdout);
    expect((await sh('systemctl is-active prometheus')).stdout.trim()).toBe('active');
    const rules = await fromPrometheus<{ groups: Array<{ name: string }> }>('rules');
    expect(rules.groups.map((g) => g.name)).toEqual(['provision-certificates']);
    // A good rule of your own goes live beside ours.
    const ok = await run(
      inventory(`  prometheus_alert_rules_extra:
    - { alert: TargetDown, expr: 'up == 0', for: 5m, labels: { severity: warning } }
`),
    );
    expect(ok.code, ok.stdout.slice(-3000) + ok.stderr).toBe(2);
    const live = await pollUntil(async () => {
      const g = (await fromPrometheus<{ groups: Array<{ name: string }> }>('rules')).groups.map((x) => x.name);
      return g.includes('provision-extra') ? g : undefined;
    }, 30_000, 1000);
    expect(live).toEqual(['provision-certificates', 'provision-extra']);
  }, RUN_BOUND_MS * 2);
});
