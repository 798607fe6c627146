/**
 * Monitoring end to end: every exporter answers on its private address from the monitoring host
 * with the metric that proves it reads its service, and Prometheus on mon-01 scrapes all of them.
 */
import { describe, expect, test } from 'vitest';
import { SHARED_DEFAULTS as P } from '../../src/roles/shared.ts';
import { firstRun } from './first-run.ts';
import { address, group, onHost, only } from './lab-env.ts';

// By group: the 3-host site and the split topology (databases on hosts of their own) alike.
const LB = group('loadbalancers');
const WEB = group('webservers');
const DB = group('databases');
const MON = only('monitoring');
const ALL = group('all');

/** GET a URL from mon-01 (where the firewall lets the scrapes through). */
async function fromMonitoring(url: string): Promise<string> {
  const r = await onHost(MON, `curl -sS --fail --max-time 5 '${url}'`, 30_000);
  if (r.code !== 0) throw new Error(`GET ${url} from mon-01: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** The value of an unlabelled sample, or of the first series of a metric. */
function sample(metrics: string, name: string): number | undefined {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.trim().split(/\s+/).at(-1));
}

describe('exporters, scraped from the monitoring host', () => {
  test.each(ALL)('node exporter on %s', async (h) => {
    const m = await fromMonitoring(`http://${address(h)}:${P.node_exporter_port}/metrics`);
    expect(sample(m, 'node_exporter_build_info')).toBe(1);
    expect(sample(m, 'node_load1')).toBeGreaterThanOrEqual(0);
  });

  test.each(LB)("HAProxy's built-in exporter on %s", async (h) => {
    const m = await fromMonitoring(`http://${address(h)}:${P.haproxy_exporter_port}/metrics`);
    expect(sample(m, 'haproxy_process_nbthread')).toBeGreaterThanOrEqual(1);
    expect(m).toMatch(/^haproxy_process_start_time_seconds \d/m);
  });

  test.each(WEB)('Nginx exporter on %s reads stub_status', async (h) => {
    const m = await fromMonitoring(`http://${address(h)}:${P.nginx_exporter_port}/metrics`);
    expect(sample(m, 'nginx_up')).toBe(1);
    expect(sample(m, 'nginx_connections_active')).toBeGreaterThanOrEqual(1); // the exporter's own scrape
  });

  test.each(DB)('mysqld exporter on %s is logged in to MySQL', async (h) => {
    const m = await fromMonitoring(`http://${address(h)}:${P.mysqld_exporter_port}/metrics`);
    expect(sample(m, 'mysql_up')).toBe(1);
    expect(sample(m, 'mysql_global_status_uptime')).toBeGreaterThan(0);
  });
});

describe('exporters listen on the private address only', () => {
  test.each(ALL)('%s: node exporter is not on loopback or any other address', async (h) => {
    const r = await onHost(h, `ss -Hltn 'sport = :${P.node_exporter_port}'`);
    const locals = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
    expect(locals).toEqual([`${address(h)}:${P.node_exporter_port}`]);
  });

  test.each(DB)('the mysqld exporter credentials on %s are readable by its user only', async (h) => {
    const r = await onHost(h, 'stat -c "%a %U" /etc/prometheus/mysqld-exporter.cnf');
    expect(r.stdout.trim()).toBe('600 prometheus');
  });

  // The site was converged from fresh hosts (global-setup.ts) on this boot: the package's start at
  // install was skipped by the role's drop-in, so the exporter never ran without its credentials
  // (it used to crash-loop until configured, a race that made the fresh plan differ from the run).
  test.each(DB)('%s: the mysqld exporter never started before its credentials existed', async (h) => {
    await firstRun(); // throws unless the site was converged from fresh hosts on this lab boot, by this code
    const r = await onHost(h, 'journalctl -b --no-pager -o cat -u prometheus-mysqld-exporter.service');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/unmet condition check \(ConditionPathExists=\/etc\/prometheus\/mysqld-exporter\.cnf\)/);
    expect(r.stdout).not.toMatch(/Failed with result|status=1\/FAILURE|Start request repeated/);
  });
});

describe('Prometheus on the monitoring host', () => {
  interface Target {
    labels: Record<string, string>;
    scrapeUrl: string;
    health: string;
    lastError: string;
  }

  const expected = [
    `prometheus/${MON}`,
    ...ALL.map((h) => `node/${h}`),
    ...LB.map((h) => `haproxy/${h}`),
    ...WEB.map((h) => `nginx/${h}`),
    ...DB.map((h) => `mysqld/${h}`),
  ].sort();

  test('lists every exporter of the inventory as a target, all healthy', async () => {
    const url = `http://${address(MON)}:${P.prometheus_port}/api/v1/targets?state=active`;
    // A target is "unknown" until its first scrape: poll for at most a few scrape intervals (15 s).
    const deadline = Date.now() + 60_000;
    let targets: Target[] = [];
    for (;;) {
      const body = JSON.parse(await fromMonitoring(url)) as { data: { activeTargets: Target[] } };
      targets = body.data.activeTargets;
      const allUp = targets.length === expected.length && targets.every((t) => t.health === 'up');
      if (allUp || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    const seen = targets.map((t) => ({ target: `${t.labels.job}/${t.labels.instance}`, health: t.health, error: t.lastError }));
    expect(seen.map((t) => t.target).sort()).toEqual(expected);
    expect(seen.filter((t) => t.health !== 'up')).toEqual([]);
    // Scrapes go to the private addresses, never to names or loopback.
    for (const t of targets) expect(t.scrapeUrl).toMatch(new RegExp(`^http://${address(t.labels.instance!).replace(/\./g, '\\.')}:\\d+/`));
  });

  test('answers only on its private address', async () => {
    const r = await onHost(MON, `curl -s -o /dev/null -w '%{http_code}' --max-time 3 http://127.0.0.1:${P.prometheus_port}/-/ready`);
    expect(r.stdout).toBe('000');
    expect(await fromMonitoring(`http://${address(MON)}:${P.prometheus_port}/-/ready`)).toMatch(/Ready/);
  });
});
