/**
 * The rest of the task language around roles and handlers: import_role runs the imported role's
 * meta/main.yml dependencies first, each once in the play (Ansible's dedup: not again after
 * `roles:` or an earlier import ran it); a role imported twice runs its run_once tasks once per
 * import; a handler's no_log hides its command and output. Hosts are recorded sessions.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadInputs } from '../../../src/cli/load.ts';
import { runPlaybook, type RunEvent } from '../../../src/executor/index.ts';
import { loadInventory } from '../../../src/inventory/index.ts';
import { enableProjectDiscovery, useProject } from '../../../src/project/index.ts';
import { MemoryReporter } from '../../../src/report/renderers.ts';
import { PENDING_HANDLERS_FILE } from '../../../src/host-paths.ts';
import { RecordedConnector, RecordedSession } from '../executor/recorded-connection.ts';

const INVENTORY = `hosts:
  web-01: { address: 127.0.0.1, port: 1, groups: [web] }
  web-02: { address: 127.0.0.1, port: 1, groups: [web] }
`;
const made: string[] = [];
afterAll(() => made.forEach((d) => rmSync(d, { recursive: true, force: true })));
afterEach(() => {
  useProject(undefined);
  enableProjectDiscovery();
});

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-role-imports-'));
  made.push(dir);
  for (const [f, text] of Object.entries({ ...files, 'inventory/hosts.yml': INVENTORY })) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

const role = (name: string, files: Record<string, string>) => Object.fromEntries(Object.entries(files).map(([f, t]) => [`roles/${name}/${f}`, t]));
const says = (word: string, extra = '') => `- name: ${word}\n  command: { cmd: "say ${word}" }\n${extra}`;

async function run(dir: string) {
  useProject(dir);
  enableProjectDiscovery();
  const { playbook } = loadInputs({ inventory: path.join(dir, 'inventory/hosts.yml'), playbook: path.join(dir, 'playbooks/site.yml') });
  const inventory = loadInventory(path.join(dir, 'inventory/hosts.yml'));
  const connector = new RecordedConnector(() => new RecordedSession());
  const reporter = new MemoryReporter();
  const res = await runPlaybook({ inventory, playbook, check: false, connector, reporter });
  const ran = (h = 'web-01') => (connector.sessions.get(h)?.ran ?? []).filter((c) => !c.includes(PENDING_HANDLERS_FILE));
  return { res, ran, events: reporter.events };
}

describe('import_role and meta/main.yml dependencies', () => {
  it("runs the imported role's dependencies first, each once in the play (not again after roles: or an earlier import)", async () => {
    const dir = project({
      ...role('base', { 'tasks/main.yml': says('base') }),
      ...role('db', { 'tasks/main.yml': says('db') }),
      ...role('shop', { 'tasks/main.yml': says('shop'), 'meta/main.yml': 'dependencies: [base, db]\n' }),
      ...role('web', { 'tasks/main.yml': says('web'), 'meta/main.yml': 'dependencies: [db]\n' }),
      'playbooks/site.yml': `- name: site
  hosts: web
  roles: [base]
  tasks:
    - import_role: { name: shop }
    - import_role: { name: web }
`,
    });
    const { ran } = await run(dir);
    expect(ran()).toEqual(['say base', 'say db', 'say shop', 'say web']);
  });

  it("a dependency of an import takes the import's when", async () => {
    const dir = project({
      ...role('db', { 'tasks/main.yml': says('db') }),
      ...role('web', { 'tasks/main.yml': says('web'), 'meta/main.yml': 'dependencies: [db]\n' }),
      'playbooks/site.yml': `- name: site
  hosts: web
  tasks:
    - import_role: { name: web }
      when: inventory_hostname == "web-02"
`,
    });
    const { ran } = await run(dir);
    expect(ran('web-01')).toEqual([]);
    expect(ran('web-02')).toEqual(['say db', 'say web']);
  });
});

describe('run_once in a role imported twice', () => {
  it('each import has its own run_once slot: the task runs once per import (on the first host), not once in the play', async () => {
    const dir = project({
      ...role('token', { 'tasks/main.yml': '- name: make token\n  command: { cmd: "make-token {{ which }}" }\n  run_once: true\n' }),
      'playbooks/site.yml': `- name: site
  hosts: web
  serial: 1
  tasks:
    - import_role: { name: token }
      vars: { which: first }
    - import_role: { name: token }
      vars: { which: second }
`,
    });
    const { ran, events } = await run(dir);
    expect(ran('web-01')).toEqual(['make-token first', 'make-token second']);
    expect(ran('web-02')).toEqual([]);
    const web02 = events.filter((e): e is Extract<RunEvent, { kind: 'task-result' }> => e.kind === 'task-result' && e.host === 'web-02');
    expect(web02.map((e) => `${e.status}: ${e.msg}`)).toEqual(['skipped: run_once: ran on web-01', 'skipped: run_once: ran on web-01']);
  });
});

describe('no_log on a handler', () => {
  it("hides the handler's command and output in every event, as on a task", async () => {
    const dir = project({
      'playbooks/site.yml': `- name: site
  hosts: web-01
  tasks:
    - { name: change, command: { cmd: "change-it" }, notify: secret handler }
  handlers:
    - name: secret handler
      command: { cmd: "rotate --token hidden-token-xyz" }
      no_log: true
`,
    });
    const { ran, events } = await run(dir);
    expect(ran()).toEqual(['change-it', 'rotate --token hidden-token-xyz']);
    const handlerEvents = events.filter((e) => 'handler' in e && e.handler === true);
    expect(handlerEvents.length).toBeGreaterThan(0);
    expect(JSON.stringify(events)).not.toContain('hidden-token-xyz');
  });
});
