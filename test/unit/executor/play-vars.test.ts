/**
 * A play's `vars:` that are templates are worked out per host, as Ansible does: over the
 * inventory's vars, inventory_hostname, facts, the other play vars and registered results; a
 * cycle or a var nobody set is bad input before any connection; a var that reads a secret is one.
 * Also what a block hands its tasks that it did not before: environment and delegate_to.
 * Hosts are recorded sessions (recorded-connection.ts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../../src/cli/exit-codes.js';
import { loadPlaybook, runPlaybook, type RunEvent } from '../../../src/executor/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import '../../../src/roles/builtin.js';
import type { ExecResult } from '../../../src/transport/index.js';
import { PlaybookError } from '../../../src/util/errors.js';
import { PENDING_HANDLERS_FILE } from '../../../src/host-paths.js';
import { RecordedConnector, RecordedSession } from './recorded-connection.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-playvars-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const INVENTORY = `hosts:
  web-01: { address: 127.0.0.1, port: 1, vars: { port: 8080, pets: [cat, dog] } }
  web-02: { address: 127.0.0.1, port: 1, groups: [db], vars: { port: 9090, pets: [] } }
vars:
  db_password: !secret db_password
`;

let n = 0;
function files(play: string): { inventory: string; playbook: string } {
  const dir = mkdtempSync(path.join(tmp, `case-${n++}-`));
  writeFileSync(path.join(dir, 'inv.yml'), INVENTORY);
  writeFileSync(path.join(dir, 'play.yml'), play);
  return { inventory: path.join(dir, 'inv.yml'), playbook: path.join(dir, 'play.yml') };
}

async function run(play: string, o: { check?: boolean; respond?: (cmd: string) => ExecResult | undefined } = {}) {
  const f = files(play);
  const inventory = loadInventory(f.inventory, { env: { PROVISION_SECRET_DB_PASSWORD: 'pw-xyz-secret' } });
  const playbook = loadPlaybook(f.playbook);
  const connector = new RecordedConnector(() => new RecordedSession({ respond: (c) => o.respond?.(c) }));
  const reporter = new MemoryReporter();
  const res = await runPlaybook({ inventory, playbook, check: o.check ?? false, connector, reporter });
  const ran = (h = 'web-01') => (connector.sessions.get(h)?.ran ?? []).filter((c) => !c.includes(PENDING_HANDLERS_FILE));
  const stdins = (h = 'web-01') => connector.sessions.get(h)?.stdins ?? [];
  const statuses = (h = 'web-01') =>
    reporter.events.filter((e): e is Extract<RunEvent, { kind: 'task-result' }> => e.kind === 'task-result' && e.host === h).map((e) => `${e.task}: ${e.status}${e.status === 'unknown' ? ` (${e.msg})` : ''}`);
  return { res, ran, stdins, statuses, connector };
}

describe('play vars that are templates', () => {
  it('are worked out per host over inventory vars, inventory_hostname, facts and each other, types kept', async () => {
    const { ran, res } = await run(`
- name: p
  hosts: all
  vars:
    greeting: "from {{ inventory_hostname }}"
    url: "http://{{ inventory_hostname }}:{{ port }}/"
    banner: "{{ greeting }} ({{ url }})"
    next_port: "{{ port + 1 }}"
    family: "{{ facts.os.family }}"
    pet_count: "{{ pets | length }}"
  tasks:
    - { name: say, command: { cmd: "echo {{ banner }} {{ family }}" } }
    - { name: typed, command: { cmd: "echo {{ next_port * 2 }}" }, when: next_port > 8000 and pet_count == 2 }
`);
    expect(ran('web-01')).toEqual(["echo 'from web-01 (http://web-01:8080/)' debian", 'echo 16162']);
    expect(ran('web-02')).toEqual(["echo 'from web-02 (http://web-02:9090/)' debian"]);
    expect(exitCodeOf(res)).toBe(2);
  });

  it('a play var reading a registered result is worked out once the result is registered (and the dry run says it depends on it)', async () => {
    const play = `
- name: p
  hosts: web-01
  vars:
    release: "{{ got.stdout }}-r1"
    target: "/srv/{{ release }}"
  tasks:
    - { name: read, command: { cmd: read-release }, register: got }
    - { name: use, command: { cmd: "deploy {{ target }}" } }
`;
    const { ran } = await run(play, { respond: (c) => (c === 'read-release' ? { stdout: 'v7\n', stderr: '', code: 0 } : undefined) });
    expect(ran()).toEqual(['read-release', 'deploy /srv/v7-r1']);
    const dry = await run(play, { check: true });
    expect(dry.ran()).toEqual([]);
    expect(dry.statuses()).toEqual(['read: changed', 'use: unknown (depends on got)']);
  });

  it('a var that reads a secret is a secret: on stdin it is fine, in a command line it is refused before connecting', async () => {
    const good = await run(`
- name: p
  hosts: web-01
  vars:
    dsn: "mysql://app:{{ db_password }}@db/"
  tasks:
    - { name: hand over, command: { cmd: "read-dsn", stdin: "{{ dsn }}" } }
`);
    expect(good.ran()).toEqual(['read-dsn']);
    expect(good.stdins()).toEqual(['mysql://app:pw-xyz-secret@db/']);
    const f = files(`
- name: p
  hosts: web-01
  vars:
    dsn: "mysql://app:{{ db_password }}@db/"
  tasks:
    - { name: leak, command: { cmd: "connect {{ dsn }}" } }
`);
    const inventory = loadInventory(f.inventory, { env: { PROVISION_SECRET_DB_PASSWORD: 'pw-xyz-secret' } });
    const connector = new RecordedConnector();
    await expect(runPlaybook({ inventory, playbook: loadPlaybook(f.playbook), check: false, connector, reporter: new MemoryReporter() })).rejects.toThrow(
      /play\.yml:7:\d+: \[0\]\.tasks\[0\]\.command\.cmd: reads the secret var "dsn" \(host web-01\): a secret never goes into a command line/,
    );
    expect(connector.opened).toEqual([]);
  });

  it('a cycle, and a var nobody set, are bad input naming the var, where and the host, before any connection', async () => {
    for (const [vars, message] of [
      ['a: "{{ b }}"\n    b: "{{ c }}"\n    c: "x{{ a }}"', /play\.yml:5:8: a: vars form a cycle \(a → b → c → a\) \(host web-01\)/],
      ['a: "{{ nobody_set_this }}"', /play\.yml:5:8: a: its template reads "nobody_set_this", which is not defined \(host web-01\)/],
    ] as const) {
      const f = files(`
- name: p
  hosts: web-01
  vars:
    ${vars}
  tasks:
    - { name: t, command: { cmd: "echo {{ a }}" } }
`);
      const inventory = loadInventory(f.inventory, { env: { PROVISION_SECRET_DB_PASSWORD: 'xxxxxxxxxx' } });
      const connector = new RecordedConnector();
      const attempt = runPlaybook({ inventory, playbook: loadPlaybook(f.playbook), check: false, connector, reporter: new MemoryReporter() });
      await expect(attempt).rejects.toThrow(PlaybookError);
      await expect(attempt).rejects.toThrow(message);
      expect(connector.opened).toEqual([]);
    }
  });
});

describe('environment and delegate_to on a block', () => {
  it("are its tasks' (their own win); the environment goes on stdin to command tasks only, never a command line", async () => {
    const { ran, stdins } = await run(`
- name: p
  hosts: web-01
  tasks:
    - name: in a block
      environment: { DB_PASS: "{{ db_password }}", MODE: block }
      delegate_to: web-02
      block:
        - { name: delegated, command: { cmd: "use-env {{ inventory_hostname }}" } }
        - { name: own env wins, command: { cmd: "own-env" }, environment: { MODE: task } }
        - { name: own delegate wins, command: { cmd: "on-web-01" }, delegate_to: web-01 }
`);
    // web-01 is the play's host: the block's tasks ran on web-02's connection, but the one delegated back.
    const last = (c: string) => c.split('; ').pop()!;
    expect(ran('web-02').map(last)).toEqual(['use-env web-01', 'own-env']);
    expect(ran('web-01').map(last)).toEqual(['on-web-01']);
    const envOf = (cmd: string, host: string) => {
      const i = ran(host).findIndex((c) => last(c) === cmd);
      return stdins(host)[i] ?? '';
    };
    const decode = (block: string) => Object.fromEntries(block.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), Buffer.from(l.slice(l.indexOf('=') + 1), 'base64').toString()]));
    expect(decode(envOf('use-env web-01', 'web-02'))).toEqual({ DB_PASS: 'pw-xyz-secret', MODE: 'block' });
    expect(decode(envOf('own-env', 'web-02'))).toEqual({ DB_PASS: 'pw-xyz-secret', MODE: 'task' });
    expect([...ran('web-01'), ...ran('web-02')].join('\n')).not.toContain('pw-xyz-secret');
    // A module that runs no command of yours in such a block loads (the environment is not its).
    const f = files('- name: p\n  hosts: all\n  tasks:\n    - name: b\n      environment: { A: b }\n      block:\n        - { name: d, file: { path: /srv/x, state: directory } }\n');
    expect((loadPlaybook(f.playbook).plays[0]!.tasks[0]!.params as Record<string, unknown>).environment).toBeUndefined();
  });

  it('delegate_to on a block naming a host the inventory lacks is exit 4 before connecting; on a role import it is refused at load', async () => {
    const f = files(`
- name: p
  hosts: web-01
  tasks:
    - name: b
      delegate_to: db-09
      block:
        - { name: t, command: { cmd: "true" } }
`);
    const connector = new RecordedConnector();
    const inventory = loadInventory(f.inventory, { env: { PROVISION_SECRET_DB_PASSWORD: 'xxxxxxxxxx' } });
    await expect(runPlaybook({ inventory, playbook: loadPlaybook(f.playbook), check: false, connector, reporter: new MemoryReporter() })).rejects.toThrow(
      /play\.yml:6:20: \[0\]\.tasks\[0\]\.delegate_to: delegate_to: "db-09" is not a host of inventory/,
    );
    expect(connector.opened).toEqual([]);
    const g = files(`
- name: p
  hosts: web-01
  tasks:
    - { import_role: { name: common }, delegate_to: web-02 }
`);
    expect(() => loadPlaybook(g.playbook)).toThrow(/play\.yml:5:\d+: \[0\]\.tasks\[0\]\.delegate_to: delegate_to on a role import is not supported/);
  });
});
