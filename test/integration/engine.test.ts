/**
 * The engine against real OpenSSH servers: two fresh lab hosts of an instance of their own.
 * Idempotence, check mode that changes nothing and predicts, handlers that survive a failed run,
 * host key verification, an unreachable host that does not stop the others, secret masking.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labPaths, labUp, restoreHost, snapshotHost } from '../../src/lab/index.ts';
import { changedTasks, provision } from '../e2e/lab-env.ts';
import { writeInventory } from './faults-helpers.ts';

const NAME = 'it';
const SUBNET = '10.79.0';
const SECRET = 'Sup3r-Secret-Value-0123';
let dir: string;

function inventory(extra = '', knownHosts?: string, acceptNew = false): string {
  return writeInventory(dir, NAME, SUBNET, {
    knownHosts,
    acceptNew,
    extraHosts: extra,
    tail: `vars:
  motd: "managed by provision"
  token: !secret api_token
`,
  });
}

const PLAY = `
- name: engine smoke
  hosts: all
  tasks:
    - name: nginx installed
      apt: { packages: [nginx-light] }
    - name: site directory
      file: { path: /srv/site, state: directory, mode: "0755" }
    - name: index page
      copy: { dest: /srv/site/index.html, content: "{{ motd }} on {{ inventory_hostname }}\\n" }
      notify: reload nginx
    - name: token file (a secret)
      copy: { dest: /etc/provision-token, content: "token={{ token }}\\n", mode: "0600" }
    - name: default site removed
      file: { path: /etc/nginx/sites-enabled/default, state: absent }
      notify: reload nginx
    - name: nginx site
      template: { src: site.conf.njk, dest: /etc/nginx/conf.d/site.conf }
      notify: reload nginx
    - name: nginx running
      service: { name: nginx, state: started, enabled: true }
    - name: guarded command
      command: { cmd: "date > /srv/site/stamp", creates: /srv/site/stamp }
  handlers:
    - name: reload nginx
      service: { name: nginx, state: reloaded }
`;

function playbook(text = PLAY): string {
  const file = path.join(dir, `play-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(file, text);
  writeFileSync(path.join(dir, 'site.conf.njk'), 'server {\n  listen 80 default_server;\n  root /srv/site;\n  # {{ motd }}\n}\n');
  return file;
}

const env = { PROVISION_SECRET_API_TOKEN: SECRET };
const run = (args: string[]) => provision(args, { env });

/** Everything --check must leave alone: packages, files under /etc and /srv, units, provision's own state. */
async function hostState(host: string): Promise<string> {
  const r = await hostExec(
    host,
    ['sh', '-c', "dpkg-query -W -f='${Package} ${Version}\\n'; find /etc /srv /var/lib/provision -xdev -printf '%p %s %m %T@\\n' 2>/dev/null | sort; systemctl list-units --type=service --no-legend --plain | awk '{print $1,$3,$4}'"],
    NAME,
  );
  return r.stdout;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-it-'));
  // Fresh hosts: an instance left over from an earlier run is taken down (its overlays go with it).
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['web-01', 'web-02'], pebble: false });
  // A clean starting point every test file run can return to.
  await snapshotHost('web-01', 'fresh', NAME);
  await snapshotHost('web-02', 'fresh', NAME);
});

afterAll(async () => {
  await labDown(NAME);
});

describe('engine on real hosts', () => {
  it('--check on fresh hosts predicts the changes, fails nothing and changes nothing', async () => {
    const before = await Promise.all([hostState('web-01'), hostState('web-02')]);
    const r = await run(['-i', inventory(), '-p', playbook(), '--check', '--diff', '--json']);
    expect(r.events.filter((e) => e.status === 'failed')).toEqual([]);
    expect(r.code).toBe(2);
    // The service from a package that is not installed yet is predicted (started and enabled by its
    // package, as Debian does, so no change), not failed.
    const svc = r.events.find((e) => e.kind === 'task-result' && e.task === 'nginx running' && e.host === 'web-01');
    expect(svc?.status).toBe('ok');
    expect(String(svc?.note)).toContain('package installed earlier in this run');
    const after = await Promise.all([hostState('web-01'), hostState('web-02')]);
    expect(after).toEqual(before);
  });

  it('first run changes, second run changes nothing and exits 0', async () => {
    const inv = inventory();
    const pb = playbook();
    const first = await run(['-i', inv, '-p', pb, '--json']);
    expect(first.events.filter((e) => e.status === 'failed')).toEqual([]);
    expect(first.code).toBe(2);
    expect(changedTasks(first).length).toBeGreaterThanOrEqual(14);
    const served = await hostExec('web-02', ['sh', '-c', 'python3 -c "import urllib.request;print(urllib.request.urlopen(\'http://127.0.0.1/\').read().decode())"'], NAME);
    expect(served.stdout).toContain('managed by provision on web-02');
    const second = await run(['-i', inv, '-p', pb, '--json']);
    expect(changedTasks(second)).toEqual([]);
    expect(second.code).toBe(0);
  });

  it('never prints a secret: text, --diff, --json', async () => {
    await hostExec('web-01', ['sh', '-c', 'rm -f /etc/provision-token'], NAME);
    const inv = inventory();
    const pb = playbook();
    const text = await run(['-i', inv, '-p', pb, '--diff', '-v']);
    const json = await run(['-i', inv, '-p', pb, '--json', '--diff', '--check']);
    expect(text.stdout + text.stderr + json.stdout + json.stderr).not.toContain(SECRET);
    const onHost = await hostExec('web-01', ['cat', '/etc/provision-token'], NAME);
    expect(onHost.stdout).toBe(`token=${SECRET}\n`);
  });

  it('a handler notified in a run that then failed runs in the next run', async () => {
    const inv = inventory();
    const failing = PLAY.replace('    - name: nginx running', '    - name: breaks on purpose\n      command: { cmd: "exit 3" }\n    - name: nginx running');
    await hostExec('web-01', ['sh', '-c', 'echo changed-by-hand > /srv/site/index.html'], NAME);
    const broken = await run(['-i', inv, '-p', playbook(failing), '--limit', 'web-01', '--json']);
    expect(broken.code).toBe(1);
    expect(broken.events.some((e) => e.task === 'reload nginx')).toBe(false);
    const pending = await hostExec('web-01', ['cat', '/var/lib/provision/pending-handlers'], NAME);
    expect(pending.stdout).toContain('reload nginx');
    const fixed = await run(['-i', inv, '-p', playbook(), '--limit', 'web-01', '--json']);
    // The task-start event carries the name too; the result is what counts.
    const handler = fixed.events.find((e) => e.kind === 'task-result' && e.task === 'reload nginx');
    expect(handler?.status).toBe('changed');
    expect(changedTasks(fixed).filter((e) => e.task !== 'reload nginx')).toEqual([]);
    const gone = await hostExec('web-01', ['test', '-e', '/var/lib/provision/pending-handlers'], NAME);
    expect(gone.code).not.toBe(0);
  });

  it('an unreachable host is reported with its reason and does not stop the others', async () => {
    const inv = inventory('  ghost: { address: 10.79.0.99 }\n');
    const r = await run(['-i', inv, '-p', playbook(), '--json']);
    const down = r.events.find((e) => e.kind === 'host-unreachable');
    expect(down?.host).toBe('ghost');
    expect(String(down?.reason)).toMatch(/timed out|unreachable|refused/);
    const recap = r.events.find((e) => e.kind === 'recap') as { hosts: Record<string, { ok: number; unreachable: number }> };
    expect(recap.hosts['web-01']!.ok).toBeGreaterThan(0);
    expect(recap.hosts.ghost!.unreachable).toBe(1);
    expect(r.code).toBe(3);
  });

  it('--limit touches only the selected hosts', async () => {
    await hostExec('web-02', ['sh', '-c', 'rm -f /srv/site/stamp'], NAME);
    await hostExec('web-01', ['sh', '-c', 'rm -f /srv/site/stamp'], NAME);
    const r = await run(['-i', inventory(), '-p', playbook(), '--limit', 'web-01', '--json']);
    expect(new Set(r.events.filter((e) => e.kind === 'task-result').map((e) => e.host))).toEqual(new Set(['web-01']));
    expect((await hostExec('web-02', ['test', '-e', '/srv/site/stamp'], NAME)).code).not.toBe(0);
  });

  it('host keys: a changed key and an unknown key are refused; accept_new_host_keys records a new one', async () => {
    const p = labPaths(NAME);
    const real = readFileSync(p.knownHosts, 'utf8');
    // Swap web-01's recorded keys for web-02's: exactly what a man in the middle looks like.
    const swapped = real
      .split('\n')
      .filter((l) => l.startsWith(`${SUBNET}.12 `))
      .map((l) => l.replace(`${SUBNET}.12 `, `${SUBNET}.11 `))
      .concat(real.split('\n').filter((l) => l.startsWith(`${SUBNET}.12 `)))
      .join('\n');
    const bad = path.join(dir, 'known_hosts_swapped');
    writeFileSync(bad, swapped + '\n');
    const changed = await run(['-i', inventory('', bad), '-p', playbook(), '--json']);
    const refused = changed.events.find((e) => e.kind === 'host-unreachable' && e.host === 'web-01');
    expect(String(refused?.reason)).toContain('HOST KEY CHANGED');
    expect(changed.code).toBe(3);

    const empty = path.join(dir, 'known_hosts_empty');
    writeFileSync(empty, '');
    const unknown = await run(['-i', inventory('', empty), '-p', playbook(), '--json']);
    expect(unknown.events.filter((e) => e.kind === 'host-unreachable').map((e) => e.host).sort()).toEqual(['web-01', 'web-02']);
    expect(String(unknown.events.find((e) => e.kind === 'host-unreachable')?.reason)).toContain('unknown host key');

    const fresh = path.join(dir, 'known_hosts_new');
    writeFileSync(fresh, '');
    chmodSync(fresh, 0o600);
    const ping = await run(['ping', '-i', inventory('', fresh, true)]);
    expect(ping.code).toBe(0);
    expect(readFileSync(fresh, 'utf8')).toMatch(new RegExp(`^${SUBNET.replace(/\./g, '\\.')}\\.11 `, 'm'));
  });

  it('restores the fresh snapshot (the lab helper works for tests that break hosts)', async () => {
    await restoreHost('web-01', 'fresh', NAME);
    const r = await hostExec('web-01', ['test', '-e', '/srv/site'], NAME);
    expect(r.code).not.toBe(0);
  });
});
