/**
 * Role vars through a run: every bad var refused at once, each where it is set, before any
 * connection (exit 4); a var nothing reads (misspelt) is a warning of the run, once, where it is set.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.ts';
import { loadPlaybook, runPlaybook } from '../../../src/executor/index.ts';
import { loadInventory } from '../../../src/inventory/index.ts';
import type { RunEvent } from '../../../src/executor/events.ts';
import '../../../src/roles/builtin.ts';
import { unreadVarWarnings } from '../../../src/roles/index.ts';
import { captureOutput } from '../helpers/output.ts';

const root = path.resolve(import.meta.dirname, '../../..');
const fixtures = path.join(root, 'test/fixtures/bad/roles');
const at = (file: string, where: string) => `${path.join(fixtures, file)}:${where}`;

describe('bad role vars: every problem at once, where it was set, nothing contacted', () => {
  const { stderr, stdout } = captureOutput();

  it('host, group, top-level and play vars: exit 4 (on a closed port a connection would have made it 3)', async () => {
    const code = await main(['-i', path.join(fixtures, 'inventory.yml'), '-p', path.join(fixtures, 'playbook.yml')]);
    expect(code, stderr.join('')).toBe(4);
    expect(stderr.join('').split('\n').filter(Boolean)).toEqual([
      'provision: error: 4 problems with the role vars (no host was contacted):',
      `  ${at('inventory.yml', '10:24')}: haproxy_maxconn: a whole number ≥ 1 (host lb1; role haproxy)`,
      `  ${at('inventory.yml', '19:35')}: nginx_client_max_body_size: a size like "10m" (host web1; role nginx)`,
      // One line for one var, however many hosts and roles read it.
      `  ${at('inventory.yml', '22:14')}: http_port: a TCP port (1-65535), got 70000 (hosts lb1, web1; roles haproxy, nginx)`,
      `  ${at('playbook.yml', '7:31')}: nginx_proxy_read_timeout: a whole number of seconds ≥ 1 (host web1; role nginx)`,
    ]);
    expect(stdout.join('')).toBe(''); // no run started
  });
});

describe('a var nothing reads', () => {
  const inventory = loadInventory(path.join(fixtures, 'misspelt.yml'));
  const playbook = loadPlaybook(path.join(fixtures, 'misspelt-playbook.yml'));
  const MISSPELT =
    `${at('misspelt.yml', '10:23')}: haproxy_maxcon: no role, template or task reads this var (did you mean "haproxy_maxconn"?)` +
    ` (also set at ${at('misspelt.yml', '18:19')})`;

  it('is one warning, with where it is set and the var it resembles; vars read by a task, a template or a when: are not', () => {
    expect(unreadVarWarnings(inventory, playbook)).toEqual([MISSPELT]);
  });

  it('reaches the run as its warning event, once, before any host is contacted', async () => {
    const events: RunEvent[] = [];
    await runPlaybook({ inventory, playbook, check: true, reporter: { emit: (e) => events.push(e) } });
    const warnings = events.filter((e) => e.kind === 'warning');
    expect(warnings).toEqual([{ kind: 'warning', msg: MISSPELT }]);
    const order = events.map((e) => e.kind);
    expect(order.indexOf('warning')).toBeLessThan(order.indexOf('host-unreachable'));
  });

  it('the repository inventories have none with the site playbook', () => {
    const env = {
      PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'replication-secret-1',
      PROVISION_SECRET_MYSQL_APP_PASSWORD: 'app-secret-12345',
      PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'exporter-secret-1',
    };
    const site = loadPlaybook(path.join(root, 'playbooks/site.yml'));
    for (const name of ['prod', 'lab', 'vagrant']) expect(unreadVarWarnings(loadInventory(path.join(root, 'inventory', `${name}.yml`), { env }), site), name).toEqual([]);
  });

  it('none when a template includes a template named at run time (it may read anything)', () => {
    const dynamic = { plays: [{ roles: [], handlers: [], tasks: [{ module: 'copy', params: {}, templated: [{ text: '{% include which %}' }] }] }] };
    expect(unreadVarWarnings(inventory, dynamic)).toEqual([]);
  });
});
