/**
 * Prediction must equal reality: for each scenario, the plan's list of changes is the list of
 * changes the following real run reports, item by item. And planning changes nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { changeLines, changeLinesFromEvents, type PlanFile } from '../../src/plan/plan.ts';
import { FRESH_PLAN_FILE, firstRun } from './first-run.ts';
import { onHost, provision } from './lab-env.ts';

function planned(plan: PlanFile): Record<string, string[]> {
  return Object.fromEntries(Object.entries(plan.hosts).map(([h, p]) => [h, changeLines(p)]).filter(([, l]) => l.length > 0));
}

async function planThenRun(): Promise<{ plan: Record<string, string[]>; real: Record<string, string[]> }> {
  const p = await provision(['plan', '--json']);
  expect(p.code, p.stderr).toBe(2);
  const plan = planned(JSON.parse(p.stdout.trim().split('\n').pop()!) as PlanFile);
  const r = await provision(['--json']);
  expect(r.events.filter((e) => e.status === 'failed').map((e) => `${e.host}: ${e.task}: ${e.msg}`)).toEqual([]);
  return { plan, real: changeLinesFromEvents(r.events) };
}

/** Host state that neither plan nor --check may touch. */
async function snapshot(): Promise<string[]> {
  const cmd =
    "dpkg-query -W -f='${Package} ${Version}\\n'; " +
    "find /etc -xdev -type f -printf '%p %s %T@\\n' | sort | sha256sum; " +
    "systemctl list-units --type=service --no-legend --plain | awk '{print $1,$3,$4}'; " +
    'ufw status verbose 2>/dev/null; ' +
    "if command -v mysql >/dev/null; then mysql -N -e 'select user,host from mysql.user order by 1,2' 2>/dev/null; fi";
  return Promise.all(['lb-01', 'web-01', 'web-02', 'mon-01'].map(async (h) => (await onHost(h, cmd)).stdout));
}

describe('plans match reality on the lab', () => {
  it('fresh hosts: the plan made before the first run lists exactly its changes', () => {
    expect(existsSync(FRESH_PLAN_FILE), 'the global setup planned the fresh hosts').toBe(true);
    const plan = JSON.parse(readFileSync(FRESH_PLAN_FILE, 'utf8').trim().split('\n').pop()!) as PlanFile;
    const first = firstRun();
    expect(first).toBeDefined();
    expect(changeLinesFromEvents(first!.events)).toEqual(planned(plan));
  });

  it('a converged site: plan and drift report nothing; plan changes nothing on the hosts', async () => {
    const before = await snapshot();
    const p = await provision(['plan', '--json']);
    expect(p.code).toBe(0);
    expect(planned(JSON.parse(p.stdout.trim()) as PlanFile)).toEqual({});
    const d = await provision(['drift', '--json']);
    expect(d.code).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ['a config file edited by hand', 'lb-01', 'echo "# edited by hand" >> /etc/haproxy/haproxy.cfg'],
    ['a service stopped', 'web-02', 'systemctl stop prometheus-node-exporter'],
    ['a package removed', 'mon-01', 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q curl'],
    ['a firewall rule deleted', 'lb-01', 'ufw delete allow 443/tcp'],
    ['the replica stopped', 'web-02', 'mysql -e "STOP SLAVE"'],
  ])('%s: the plan lists exactly what the run then changes', async (_name, host, breakIt) => {
    try {
      const broke = await onHost(host, breakIt);
      expect(broke.code, broke.stderr).toBe(0);
      // drift sees it, exit 2
      expect((await provision(['drift'])).code).toBe(2);
      const { plan, real } = await planThenRun();
      expect(Object.keys(plan).length).toBeGreaterThan(0);
      expect(real).toEqual(plan);
      // …and the site is whole again
      const again = await provision(['--json']);
      expect(again.code).toBe(0);
    } finally {
      await provision(['--json']);
    }
  });

  it('apply refuses a host that drifted after the plan, applies the others, and --all-or-nothing applies none', async () => {
    try {
    await onHost('lb-01', 'echo "# drift 1" >> /etc/haproxy/haproxy.cfg');
    await onHost('web-01', 'systemctl stop prometheus-node-exporter');
    const planFile = `/tmp/provision-e2e/apply-plan.json`;
    expect((await provision(['plan', '--out', planFile])).code).toBe(2);
    await onHost('web-01', 'systemctl start prometheus-node-exporter; systemctl stop nginx');
    const none = await provision(['apply', planFile, '--all-or-nothing']);
    expect(none.code).toBe(5);
    expect(none.stderr).toContain('web-01: refused');
    expect((await onHost('lb-01', 'tail -1 /etc/haproxy/haproxy.cfg')).stdout).toContain('# drift 1');
    const some = await provision(['apply', planFile]);
    expect(some.code).toBe(5);
    expect((await onHost('lb-01', 'tail -1 /etc/haproxy/haproxy.cfg')).stdout).not.toContain('# drift 1');
    expect((await onHost('web-01', 'systemctl is-active nginx')).stdout.trim()).not.toBe('active');
      expect((await provision(['--json'])).code).toBe(2); // converges web-01 again
      expect((await provision(['--json'])).code).toBe(0);
    } finally {
      await onHost('web-01', 'systemctl start nginx prometheus-node-exporter');
      await provision(['--json']);
    }
  });
});
