/**
 * A YAML role's tasks are a tree walked on each host like a play's body: register (read by later
 * tasks of the role and of the play), changed_when / failed_when, run_once, block/rescue/always,
 * include_tasks and import_role (with vars) inside a role, handlers notified from inside blocks,
 * and a dry run that says "unknown" where it cannot know. Hosts are recorded sessions.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadInputs } from '../../../src/cli/load.ts';
import { main } from '../../../src/cli/main.ts';
import { exitCodeOf } from '../../../src/cli/exit-codes.ts';
import { loadPlaybook, runPlaybook, type RunEvent } from '../../../src/executor/index.ts';
import { roleTree } from '../../../src/executor/playbook.ts';
import { getRole } from '../../../src/roles/index.ts';
import { loadInventory } from '../../../src/inventory/index.ts';
import { enableProjectDiscovery, useProject } from '../../../src/project/index.ts';
import { MemoryReporter } from '../../../src/report/renderers.ts';
import type { ExecResult } from '../../../src/transport/index.ts';
import { PENDING_HANDLERS_FILE } from '../../../src/host-paths.ts';
import { RecordedConnector, RecordedSession } from '../executor/recorded-connection.ts';
import { captureOutput } from '../helpers/output.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CLOSED = path.join(ROOT, 'test/fixtures/bad/cli/closed.yml');
const BAD = path.join(ROOT, 'test/fixtures/bad/yaml-role');
const { stderr } = captureOutput();

const INVENTORY = `hosts:
  web-01: { address: 127.0.0.1, port: 1, groups: [web], vars: { site: one } }
  web-02: { address: 127.0.0.1, port: 1, groups: [web], vars: { site: two } }
`;

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-role-tree-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  mkdirSync(path.join(dir, 'inventory'), { recursive: true });
  writeFileSync(path.join(dir, 'inventory/hosts.yml'), INVENTORY);
  if (!existsSync(path.join(dir, 'inventory', 'closed.yml'))) copyFileSync(CLOSED, path.join(dir, 'inventory', 'closed.yml'));
  return dir;
}

afterEach(() => {
  useProject(undefined);
  enableProjectDiscovery();
});

const ok = (stdout: string, code = 0): ExecResult => ({ stdout, stderr: '', code });

async function run(dir: string, o: { check?: boolean; respond?: (host: string, cmd: string) => ExecResult | undefined } = {}) {
  useProject(dir);
  enableProjectDiscovery();
  const { playbook } = loadInputs({ inventory: path.join(dir, 'inventory/hosts.yml'), playbook: path.join(dir, 'playbooks/site.yml') });
  const inventory = loadInventory(path.join(dir, 'inventory/hosts.yml'));
  const connector = new RecordedConnector((host) => new RecordedSession({ respond: (c) => o.respond?.(host.name, c) }));
  const reporter = new MemoryReporter();
  const res = await runPlaybook({ inventory, playbook, check: o.check ?? false, connector, reporter });
  const ran = (h = 'web-01') => (connector.sessions.get(h)?.ran ?? []).filter((c) => !c.includes(PENDING_HANDLERS_FILE));
  const results = (h = 'web-01') => reporter.events.filter((e): e is Extract<RunEvent, { kind: 'task-result' }> => e.kind === 'task-result' && e.host === h);
  const statuses = (h = 'web-01') => results(h).map((e) => `${e.role ? `${e.role}: ` : ''}${e.task}: ${e.status}${e.status === 'unknown' || e.msg?.startsWith('run_once') ? ` (${e.msg})` : ''}`);
  return { res, ran, statuses, results };
}

const role = (name: string, files: Record<string, string>) => Object.fromEntries(Object.entries(files).map(([f, t]) => [`roles/${name}/${f}`, t]));

/** A role using what used to be refused in a role's files: the sample of this test file. */
const TREE_ROLE = {
  ...role('webapp', {
    'defaults/main.yml': 'app_greeting: hello\n',
    'tasks/main.yml': `- name: probe
  command: { cmd: "probe {{ site }}" }
  register: probed
  changed_when: probed.stdout == "new"
- name: only when new
  command: { cmd: "setup {{ app_greeting }}" }
  when: probed.stdout == "new"
- name: token
  command: { cmd: make-token }
  run_once: true
  register: token
  changed_when: false
- block:
    - name: try
      command: { cmd: "try {{ token.stdout }}" }
      notify: restart webapp
    - name: fails
      command: { cmd: "false" }
  rescue:
    - name: fallback
      command: { cmd: fallback }
      failed_when: false
  always:
    - include_tasks: extra.yml
- import_role: { name: helper }
  vars: { helper_word: "{{ app_greeting }}-{{ site }}" }
`,
    'tasks/extra.yml': '- name: extra\n  command: { cmd: "extra {{ probed.rc }}" }\n',
    'handlers/main.yml': '- name: restart webapp\n  command: { cmd: restart-app }\n',
  }),
  ...role('helper', {
    'defaults/main.yml': 'helper_word: none\n',
    'tasks/main.yml': '- name: helper says\n  command: { cmd: "say {{ helper_word }}" }\n',
  }),
  'playbooks/site.yml': `- name: site
  hosts: web
  roles: [webapp]
  tasks:
    - name: after the role
      command: { cmd: "after {{ probed.stdout }} {{ token.stdout }}" }
`,
};

describe('a YAML role is a task tree walked like a play', () => {
  it('register (read by the role and by the play), changed_when, run_once, rescue/always, include_tasks, import_role with vars, a handler notified in a block', async () => {
    const dir = project(TREE_ROLE);
    const respond = (h: string, c: string) => (c === 'probe one' ? ok('new') : c === 'probe two' ? ok('same') : c === 'make-token' ? ok(`tok-${h}`) : undefined);
    const { ran, statuses, res } = await run(dir, { respond });
    // run_once: whichever host reaches the task first runs it; its result is registered on both.
    const owner = ran('web-01').includes('make-token') ? 'web-01' : 'web-02';
    const other = owner === 'web-01' ? 'web-02' : 'web-01';
    const notToken = (h: string) => ran(h).filter((c) => c !== 'make-token');
    expect(ran(other)).not.toContain('make-token');
    expect(ran(owner).filter((c) => c === 'make-token')).toHaveLength(1);
    expect(notToken('web-01')).toEqual(['probe one', 'setup hello', `try tok-${owner}`, 'false', 'fallback', 'extra 0', 'say hello-one', `after new tok-${owner}`, 'restart-app']);
    expect(notToken('web-02')).toEqual(['probe two', `try tok-${owner}`, 'false', 'fallback', 'extra 0', 'say hello-two', `after same tok-${owner}`, 'restart-app']);
    expect(statuses(other)[2]).toBe(`webapp: token: skipped (run_once: ran on ${owner})`);
    expect(statuses('web-02').filter((l) => !l.includes('token'))).toEqual([
      'webapp: probe: ok',
      'webapp: only when new: skipped',
      'webapp: try: changed',
      'webapp: fails: ignored',
      'webapp: fallback: changed',
      'webapp: extra: changed',
      'helper: helper says: changed',
      'after the role: changed',
      'webapp: restart webapp: changed',
    ]);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('--check: a role task whose when reads a result a dry run cannot know is "unknown", in the role as in the play', async () => {
    const dir = project(TREE_ROLE);
    const { ran, statuses } = await run(dir, { check: true, respond: () => ok('') });
    expect(ran()).toEqual([]);
    expect(statuses().slice(0, 2)).toEqual(['webapp: probe: unknown (depends on probed)', 'webapp: only when new: unknown (depends on probed)']);
    expect(statuses()).toContain('after the role: unknown (depends on probed)');
  });

  it("import_role's vars are the role's: a required var given there is no missing var before connecting", async () => {
    const dir = project({
      ...role('needy', {
        'meta/main.yml': 'argument_specs:\n  main:\n    options:\n      needy_word: { type: str, required: true }\n',
        'tasks/main.yml': '- name: needy says\n  command: { cmd: "needy {{ needy_word }}" }\n',
      }),
      'playbooks/site.yml': '- name: p\n  hosts: web\n  tasks:\n    - import_role: { name: needy }\n      vars: { needy_word: "hi {{ site }}" }\n',
    });
    const { ran } = await run(dir);
    expect(ran('web-01')).toEqual(["needy 'hi one'"]);
    expect(ran('web-02')).toEqual(["needy 'hi two'"]);
  });

  it("a secret of the inventory in a role task's command line is exit 4 with file:line:col, before any connection", async () => {
    const dir = project({
      ...role('leaky', { 'tasks/main.yml': '- name: leak\n  command: { cmd: "tool --password {{ db_password }}" }\n' }),
      'inventory/closed.yml': 'hosts:\n  web1: { address: 127.0.0.1, port: 1, groups: [web], vars: { db_password: !secret db_password_for_test } }\n',
      'playbooks/site.yml': '- name: p\n  hosts: web\n  roles: [leaky]\n',
    });
    process.env.PROVISION_SECRET_DB_PASSWORD_FOR_TEST = 'a-long-test-secret';
    try {
      stderr.length = 0;
      enableProjectDiscovery();
      expect(await main(['--project', dir, '-i', 'closed', '-p', 'playbooks/site.yml'])).toBe(4);
      expect(stderr.join('').split('\n')[0]).toMatch(new RegExp(`^provision: error: ${path.join(dir, 'roles/leaky/tasks/main.yml')}:2:\\d+: \\[0\\]\\.command\\.cmd: reads the secret var "db_password"`));
    } finally {
      delete process.env.PROVISION_SECRET_DB_PASSWORD_FOR_TEST;
    }
  });

  it('an import_role cycle between roles is exit 4 with file:line:col, before any connection', async () => {
    stderr.length = 0;
    enableProjectDiscovery();
    const code = await main(['--project', path.join(BAD, 'import-cycle'), '-i', 'closed', '-p', 'playbooks/site.yml']);
    expect(code).toBe(4);
    expect(stderr.join('').split('\n')[0]).toBe(
      `provision: error: ${path.join(BAD, 'import-cycle/roles/b/tasks/main.yml')}:2:24: [0].import_role.name: role import cycle: a → b → a`,
    );
  });
});

describe("copy's src is a control path, as template's", () => {
  it("in a playbook: next to the playbook, wherever the command starts; in a role: in its files/, inside a block too", () => {
    const dir = project({
      'playbooks/motd.txt': 'hi\n',
      'playbooks/site.yml': '- name: p\n  hosts: web\n  roles: [files]\n  tasks:\n    - { name: motd, copy: { src: motd.txt, dest: /etc/motd } }\n',
      ...role('files', {
        'files/banner.txt': 'banner\n',
        'tasks/main.yml': '- block:\n    - name: banner\n      copy: { src: banner.txt, dest: /etc/banner }\n',
      }),
    });
    useProject(dir);
    enableProjectDiscovery();
    const book = loadPlaybook(path.join(dir, 'playbooks/site.yml'));
    expect(book.plays[0]!.tasks[0]!.params).toMatchObject({ src: path.join(dir, 'playbooks/motd.txt') });
    expect(roleTree(getRole('files'))!.tasks[0]!.params).toMatchObject({ src: path.join(dir, 'roles/files/files/banner.txt') });
  });

  it("a file missing from a role's files/ is exit 4 with file:line:col", async () => {
    stderr.length = 0;
    enableProjectDiscovery();
    const code = await main(['--project', path.join(BAD, 'copy-missing'), '-i', 'closed', '-p', 'playbooks/site.yml']);
    expect(code).toBe(4);
    expect(stderr.join('').split('\n')[0]).toBe(
      `provision: error: ${path.join(BAD, 'copy-missing/roles/a/tasks/main.yml')}:3:20: [0].block[0].copy.src: "nope.txt" not found in ${path.join(BAD, 'copy-missing/roles/a/files')}/`,
    );
  });
});
