/**
 * Prediction must equal reality: for each scenario, the plan's list of changes is the list of
 * changes the following real run reports, item by item; and what the plan said each file, package
 * and unit would become is what the hosts hold afterwards, read with plain shell commands (not
 * through src/plan or the modules' probes). And planning changes nothing.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { changeLines, changeLinesFromEvents, type PlanFile } from '../../src/plan/plan.ts';
import { firstRun } from './first-run.ts';
import { INSTANCE, group, onHost, only, provision } from './lab-env.ts';

// Hosts by what they are, so the same scenarios run on the 3-host site and the split topology.
const ALL = group('all');
const LB = group('loadbalancers')[0]!;
const WEB = group('webservers');
const MON = only('monitoring');
const REPLICA = only('db_replica');

function planned(plan: PlanFile): Record<string, string[]> {
  return Object.fromEntries(Object.entries(plan.hosts).map(([h, p]) => [h, changeLines(p)]).filter(([, l]) => l.length > 0));
}

const lastLine = (stdout: string) => JSON.parse(stdout.trim().split('\n').pop()!) as PlanFile;
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** One thing a plan said a host would hold after the run, with the shell line that reads it back. */
interface Expectation {
  /** "file sha256", "file mode", "package", "unit active"…: what the counts of a reading are by. */
  kind: string;
  what: string;
  cmd: string;
  want: string;
}

/**
 * What a plan says the hosts will hold, read from the plan file's raw changes (not its change
 * keys): a file's content (sha256 of what copy/template write), its mode and owner when the plan
 * names them, a package installed or removed, a unit active/inactive and enabled/disabled. The last
 * word on a target wins (a later task or handler in the same run).
 */
export function expectations(plan: PlanFile): Record<string, Expectation[]> {
  const out: Record<string, Expectation[]> = {};
  for (const [host, hp] of Object.entries(plan.hosts)) {
    const by = new Map<string, Expectation>();
    const put = (e: Expectation) => by.set(e.what, e);
    for (const t of hp.tasks) {
      for (const c of t.changes) {
        const q = shq(c.target);
        if (c.kind === 'file') {
          if (c.action === 'remove') put({ kind: 'file absent', what: `file ${c.target} exists`, cmd: `test -e ${q} && echo yes || echo no`, want: 'no' });
          else if (/^(create|update content)\b/.test(c.action) && ['copy', 'template'].includes(t.module)) {
            put({ kind: 'file exists', what: `file ${c.target} exists`, cmd: `test -f ${q} && echo yes || echo no`, want: 'yes' });
            if (c.after !== undefined && !c.sensitive) {
              put({ kind: 'file sha256', what: `file ${c.target} sha256`, cmd: `sha256sum < ${q} | cut -d' ' -f1`, want: createHash('sha256').update(c.after, 'utf8').digest('hex') });
            }
          }
          else if (c.action !== 'create directory' && !/^(relink|link|mode|owner)\b/.test(c.action)) {
            // Content written by another module (lineinfile, a user's keys) after a copy/template: no longer the planned bytes.
            by.delete(`file ${c.target} sha256`);
          }
          const mode = / mode \S+ → (\d+)/.exec(` ${c.action}`);
          if (mode) put({ kind: 'file mode', what: `file ${c.target} mode`, cmd: `stat -c %a ${q}`, want: String(Number.parseInt(mode[1]!, 8).toString(8)) });
          const owner = / owner \S+ → ([^\s,)]+)/.exec(` ${c.action}`);
          if (owner) put({ kind: 'file owner', what: `file ${c.target} owner`, cmd: `stat -c %U:%G ${q}`, want: owner[1]! });
        } else if (c.kind === 'package' && c.target !== 'dpkg') {
          const installed = !c.action.startsWith('remove');
          put({
            kind: installed ? 'package installed' : 'package removed',
            what: `package ${c.target}`,
            cmd: `dpkg-query -W -f='\${db:Status-Status}' ${q} 2>/dev/null | grep -qx installed && echo installed || echo absent`,
            want: installed ? 'installed' : 'absent',
          });
        } else if (c.kind === 'service') {
          if (c.action === 'enable' || c.action === 'disable') {
            put({ kind: 'unit enabled', what: `unit ${c.target} enabled`, cmd: `systemctl is-enabled ${q} 2>/dev/null || true`, want: c.action === 'enable' ? 'enabled' : 'disabled' });
          } else if (['start', 'stop', 'restart', 'reload'].includes(c.action)) {
            put({ kind: 'unit active', what: `unit ${c.target} active`, cmd: `systemctl is-active ${q} 2>/dev/null || true`, want: c.action === 'stop' ? 'inactive' : 'active' });
          }
        }
      }
    }
    if (by.size) out[host] = [...by.values()];
  }
  return out;
}

/** Reads every expectation back from its host with plain shell (one SSH command per host). */
async function readBack(want: Record<string, Expectation[]>): Promise<{ mismatches: string[]; counts: Record<string, number> }> {
  const mismatches: string[] = [];
  const counts: Record<string, number> = {};
  await Promise.all(
    Object.entries(want).map(async ([host, list]) => {
      const script = list.map((e, i) => `printf '%s\\t%s\\n' ${i} "$(${e.cmd})"`).join('\n');
      const r = await onHost(host, script, 120_000);
      expect(r.code, `${host}: ${r.stderr}`).toBe(0);
      const got = new Map(r.stdout.split('\n').filter(Boolean).map((l) => [Number(l.split('\t')[0]), l.split('\t').slice(1).join('\t')] as const));
      list.forEach((e, i) => {
        counts[e.kind] = (counts[e.kind] ?? 0) + 1;
        if (got.get(i) !== e.want) mismatches.push(`${host}: ${e.what}: planned ${e.want}, host has ${got.get(i) ?? '(nothing)'}`);
      });
    }),
  );
  return { mismatches, counts };
}

async function planThenRun(): Promise<{ plan: Record<string, string[]>; real: Record<string, string[]>; file: PlanFile }> {
  const p = await provision(['plan', '--json']);
  expect(p.code, p.stderr).toBe(2);
  const file = lastLine(p.stdout);
  const plan = planned(file);
  const r = await provision(['--json']);
  expect(r.events.filter((e) => e.status === 'failed').map((e) => `${e.host}: ${e.task}: ${e.msg}`)).toEqual([]);
  return { plan, real: changeLinesFromEvents(r.events), file };
}

/** Host state that neither plan, drift nor --check may touch: packages, files (contents, mode, owner), units, rules, users. */
async function snapshot(): Promise<string[]> {
  const dirs = '/etc /srv /opt /usr/local /root';
  const cmd =
    "dpkg-query -W -f='${Package} ${Version}\\n'; " +
    `find ${dirs} -xdev -printf '%p %y %m %u:%g %l\\n' 2>/dev/null | sort; ` +
    `find ${dirs} -xdev -type f -printf '%p %s %T@\\n' 2>/dev/null | sort; ` +
    `find ${dirs} -xdev -type f -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum; ` +
    // Units that are running or failed; a oneshot that a timer starts meanwhile (systemd-tmpfiles-clean:
    // "activating start" in one snapshot, gone in the next) is the host's own life, not the run's.
    "systemctl list-units --type=service --no-legend --plain | awk '$3==\"active\"||$3==\"failed\"{print $1,$3,$4}'; " +
    "systemctl list-unit-files --type=service --no-legend | awk '{print $1,$2}'; " +
    'ufw status verbose 2>/dev/null; ' +
    "if command -v mysql >/dev/null; then mysql -N -e 'select user,host from mysql.user order by 1,2' 2>/dev/null; fi";
  return Promise.all(ALL.map(async (h) => (await onHost(h, cmd, 120_000)).stdout));
}

describe('plans match reality on the lab', () => {
  it('fresh hosts: the plan made before the first run lists exactly its changes', async () => {
    const first = await firstRun(); // throws on an earlier lab boot's or other code's record
    const plan = lastLine(first.freshPlan);
    expect(changeLinesFromEvents(first.events)).toEqual(planned(plan));
  });

  it('fresh hosts: what the plan said files, packages and units would become is what the hosts hold', async () => {
    const plan = lastLine((await firstRun()).freshPlan);
    const want = expectations(plan);
    const { mismatches, counts } = await readBack(want);
    // The fresh plan installs the site: a reading that found no file content, package or unit checked nothing.
    expect(Object.keys(want).sort()).toEqual([...ALL].sort());
    for (const kind of ['file sha256', 'package installed', 'unit active', 'unit enabled']) expect(counts[kind] ?? 0, kind).toBeGreaterThan(0);
    expect(counts['file sha256']).toBeGreaterThan(10);
    expect(mismatches).toEqual([]);
  });

  it('a converged site: plan and drift report nothing; plan, drift and --check change nothing on the hosts', async () => {
    const before = await snapshot();
    const p = await provision(['plan', '--json']);
    expect(p.code).toBe(0);
    expect(planned(JSON.parse(p.stdout.trim()) as PlanFile)).toEqual({});
    const d = await provision(['drift', '--json']);
    expect(d.code).toBe(0);
    const c = await provision(['--check', '--diff', '--json']);
    expect(c.code).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it.each([
    ['a config file edited by hand', LB, 'echo "# edited by hand" >> /etc/haproxy/haproxy.cfg'],
    ['a service stopped', WEB.at(-1)!, 'systemctl stop prometheus-node-exporter'],
    ['a package removed', MON, 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q curl'],
    ['a firewall rule deleted', LB, 'ufw delete allow 443/tcp'],
    ['the replica stopped', REPLICA, 'mysql -e "STOP SLAVE"'],
  ])('%s: the plan lists exactly what the run then changes', async (_name, host, breakIt) => {
    try {
      const broke = await onHost(host, breakIt);
      expect(broke.code, broke.stderr).toBe(0);
      // drift sees it, exit 2; neither drift nor --check on the drifted site touches a host
      const before = await snapshot();
      expect((await provision(['drift'])).code).toBe(2);
      expect((await provision(['--check', '--diff', '--json'])).code).toBe(2);
      expect(await snapshot()).toEqual(before);
      const { plan, real, file } = await planThenRun();
      expect(Object.keys(plan).length).toBeGreaterThan(0);
      expect(real).toEqual(plan);
      // …and what the plan said is what the hosts now hold, read back with plain shell
      expect((await readBack(expectations(file))).mismatches).toEqual([]);
      // …and the site is whole again
      const again = await provision(['--json']);
      expect(again.code).toBe(0);
    } finally {
      await provision(['--json']);
    }
  });

  it('apply refuses a host that drifted after the plan, applies the others, and --all-or-nothing applies none', async () => {
    try {
    await onHost(LB, 'echo "# drift 1" >> /etc/haproxy/haproxy.cfg');
    await onHost(WEB[0]!, 'systemctl stop prometheus-node-exporter');
    const planFile = `/tmp/provision-e2e/${INSTANCE}-apply-plan.json`;
    expect((await provision(['plan', '--out', planFile])).code).toBe(2);
    await onHost(WEB[0]!, 'systemctl start prometheus-node-exporter; systemctl stop nginx');
    const none = await provision(['apply', planFile, '--all-or-nothing']);
    expect(none.code).toBe(5);
    expect(none.stderr).toContain(`${WEB[0]!}: refused`);
    expect((await onHost(LB, 'tail -1 /etc/haproxy/haproxy.cfg')).stdout).toContain('# drift 1');
    const some = await provision(['apply', planFile]);
    expect(some.code).toBe(5);
    expect((await onHost(LB, 'tail -1 /etc/haproxy/haproxy.cfg')).stdout).not.toContain('# drift 1');
    expect((await onHost(WEB[0]!, 'systemctl is-active nginx')).stdout.trim()).not.toBe('active');
      expect((await provision(['--json'])).code).toBe(2); // converges the web server again
      expect((await provision(['--json'])).code).toBe(0);
    } finally {
      await onHost(WEB[0]!, 'systemctl start nginx prometheus-node-exporter');
      await provision(['--json']);
    }
  });
});
