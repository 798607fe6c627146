/**
 * "{{ … }}" in a playbook's task params, as expanded for one host: command lines get every value
 * escaped for its place; a string that reads a secret becomes a Secret, in the params that take one.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BoundTask } from '../../../src/executor/bind.js';
import { expandPlay } from '../../../src/executor/expand.js';
import { checkSecretsInParams, loadPlaybook } from '../../../src/executor/playbook.js';
import { parseInventory } from '../../../src/inventory/loader.js';
import { commandModule, copyModule, emptyPredictedState } from '../../../src/modules/index.js';
import { PlaybookError } from '../../../src/util/errors.js';
import { Secret } from '../../../src/util/secrets.js';
import { debianFacts, fileProbeResults, moduleContext } from '../modules/fixtures.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-expand-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SECRET = 'Pa55\\w0rd"2024';
const INJECTION = "bob'; touch INJECTED; echo '";

const inventory = parseInventory(
  `hosts:
  web1:
    address: 10.0.0.1
    vars:
      owner: "${INJECTION.replace(/"/g, '\\"')}"
      db_password: !secret db_password
      users: [{ name: app, password: !secret db_password }]
`,
  path.join(tmp, 'inv.yml'),
  { PROVISION_SECRET_DB_PASSWORD: SECRET },
);
const host = inventory.hosts.get('web1')!;

function playbook(tasks: string): ReturnType<typeof loadPlaybook> {
  const file = path.join(tmp, `play-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(file, `- name: p\n  hosts: all\n  tasks:\n${tasks}`);
  return loadPlaybook(file);
}

/** The play's tasks, rendered and bound for the host (params parsed by their module). */
function expand(tasks: string): BoundTask[] {
  const pb = playbook(tasks);
  const expanded = expandPlay(pb.plays[0]!, host, debianFacts(), inventory, pb.file);
  if (!expanded.ok) throw expanded.error;
  return expanded.play.tasks as BoundTask[];
}

/** What expansion refuses, as the run reports it when the play runs on the host. */
function expansionError(pb: ReturnType<typeof loadPlaybook>): string {
  const expanded = expandPlay(pb.plays[0]!, host, debianFacts(), inventory, pb.file);
  return expanded.ok ? '(expanded)' : String((expanded.error as Error).message);
}

describe('expansion of YAML params', () => {
  it('an inventory value in cmd is one word: the command sh runs creates nothing', async () => {
    const [task] = expand(`    - name: own
      command: { cmd: 'printf "<%s>" {{ owner }}' }
`);
    const plan = await commandModule.plan(commandModule.schema.parse(task!.params), { results: new Map(), predicted: emptyPredictedState() } as never);
    const cmd = (plan.commands[0] as { cmd: string }).cmd;
    const dir = mkdtempSync(path.join(tmp, 'sh-'));
    expect(execFileSync('/bin/sh', ['-c', cmd], { cwd: dir, encoding: 'utf8' })).toBe(`<${INJECTION}>`);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a secret read into stdin or environment becomes a Secret (kept out of argv, masked), and reaches the command on stdin', async () => {
    const [task] = expand(`    - name: set it
      command:
        cmd: 'read -r line; printf "%s|%s" "$line" "$PW"'
        stdin: "pw={{ db_password }}\\n"
        environment: { PW: "{{ db_password | upper }}" }
`);
    const params = task!.params as { stdin: unknown; environment: { PW: unknown } };
    expect(params.stdin).toBeInstanceOf(Secret);
    expect(params.environment.PW).toBeInstanceOf(Secret);
    const plan = await commandModule.plan(commandModule.schema.parse(params), { results: new Map(), predicted: emptyPredictedState() } as never);
    const c = plan.commands[0] as { cmd: string; stdin: string };
    expect(c.cmd).not.toContain(SECRET);
    expect(c.cmd).not.toContain(SECRET.toUpperCase());
    expect(execFileSync('/bin/sh', ['-c', c.cmd], { input: c.stdin, encoding: 'utf8' })).toBe(`pw=${SECRET}|${SECRET.toUpperCase()}`);
  });

  it('copy content that reads a secret through a filter is sensitive: no before/after in its change', async () => {
    const [task] = expand(`    - name: client config
      copy: { dest: /etc/app.json, content: "{{ users | dump }}", mode: "0600" }
`);
    const plan = await copyModule.plan(
      copyModule.schema.parse(task!.params),
      moduleContext({
        host,
        facts: debianFacts(),
        check: true,
        predicted: emptyPredictedState(),
        results: new Map(fileProbeResults('/etc/app.json', 'absent')),
        run: async () => ({ stdout: '', code: 0 }),
      }),
    );
    expect(plan.changes[0]).toMatchObject({ sensitive: true });
    expect(plan.changes[0]!.after).toBeUndefined();
  });

  it('the check before connecting refuses what expansion would (one rule): a secret in a loop in cmd', () => {
    const pb = playbook(`    - name: users
      command: { cmd: "{% for u in users %}useradd {{ u.name }}; {% endfor %}" }
`);
    expect(() => checkSecretsInParams(inventory, pb, ['web1'])).toThrow(PlaybookError);
    expect(() => checkSecretsInParams(inventory, pb, ['web1'])).toThrow(/\[0\]\.tasks\[0\]\.command\.cmd: reads the secret var "users" \(host web1\)/);
    expect(expansionError(pb)).toMatch(/cmd: reads the secret var "users"/);
    // A host not selected (--limit) is not looked at.
    expect(() => checkSecretsInParams(inventory, pb, [])).not.toThrow();
  });
});

describe('secrets through the task language (loop items, task vars)', () => {
  it('a loop over a var that holds secrets keeps them secrets: an item in a command line is refused, in stdin it is a Secret', () => {
    expect(expansionError(playbook(`    - { name: each, command: { cmd: "useradd {{ item.password }}" }, loop: "{{ users }}" }\n`))).toMatch(
      /task "each": cmd: reads the secret var "item.password" \(host web1\): a secret never goes into a command line/,
    );
    const [t] = expand(`    - { name: each, command: { cmd: "chpasswd", stdin: "{{ item.name }}:{{ item.password }}" }, loop: "{{ users }}" }\n`);
    expect((t!.params as { stdin: unknown }).stdin).toBeInstanceOf(Secret);
  });

  it('a loop over a computed list that reads a secret is refused (its items would be plain text)', () => {
    expect(expansionError(playbook(`    - { name: each, command: { cmd: "echo {{ item }}" }, loop: "{{ [db_password, 'x'] }}" }\n`))).toMatch(
      /loop: this expression reads the secret var "db_password": loop over the var itself/,
    );
  });

  it('a task var (or a loop item) that reads a secret stays a secret', () => {
    expect(expansionError(playbook(`    - { name: v, command: { cmd: "echo {{ pw }}" }, vars: { pw: "{{ db_password }}" } }\n`))).toMatch(/reads the secret var "pw"/);
    expect(expansionError(playbook(`    - { name: l, command: { cmd: "echo {{ item }}" }, loop: ["{{ db_password }}"] }\n`))).toMatch(/reads the secret var "item"/);
  });
});
