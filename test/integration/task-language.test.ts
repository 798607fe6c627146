/**
 * The YAML task language on a real host (instance langt, one fresh lab host): loop, when over
 * facts and registered results, register, changed_when, block/rescue/always. --check on the fresh
 * host predicts the first run (saying "unknown" where it cannot know), the first run changes,
 * the second changes nothing. Then a task's become_user (sudo -u on the real host) and a play var
 * that reads what it registered.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';

const NAME = 'langt';
const SUBNET = '10.83.0';
let dir: string;
let inventory: string;
let playbook: string;

const PLAY = `
- name: task language on a real host
  hosts: all
  vars:
    sites: [alpha, beta]
  tasks:
    - name: site directory
      file: { path: "/srv/lang/{{ item }}", state: directory, mode: "0755" }
      loop: "{{ sites }}"
      loop_control: { label: "site {{ item }}" }
    - name: read the marker
      command: { cmd: "cat /srv/lang/marker 2>/dev/null || echo none" }
      register: marker
      changed_when: false
    - name: marker written once
      copy: { dest: /srv/lang/marker, content: "converged\\n" }
      when: marker.stdout == "none"
    - name: only on debian
      copy: { dest: /srv/lang/os, content: "{{ facts.os.family }}\\n" }
      when: facts.os.family == "debian"
    - name: never on redhat
      copy: { dest: /srv/lang/redhat, content: "no\\n" }
      when: facts.os.family == "redhat"
    - name: fast path or fallback
      block:
        - name: fast path available
          command: { cmd: "test -e /srv/lang/fast" }
          changed_when: false
      rescue:
        - name: fallback config
          copy: { dest: /srv/lang/mode, content: "fallback\\n" }
      always:
        - name: always stamp
          copy: { dest: /srv/lang/always, content: "always\\n" }
    - name: sites counted
      command: { cmd: "ls -d /srv/lang/*/ | wc -l" }
      register: count
      changed_when: count.stdout | int != 2
`;

type Event = Record<string, unknown>;
const taskResults = (r: CliResult): Event[] => r.events.filter((e) => e.kind === 'task-result');
const byStatus = (r: CliResult, status: string) => taskResults(r).filter((e) => e.status === status).map((e) => String(e.task));
const statusOf = (r: CliResult) => Object.fromEntries(taskResults(r).map((e) => [String(e.task), String(e.status)]));

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-lang-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['web-01'], pebble: false });
  const p = labPaths(NAME);
  inventory = path.join(dir, 'inv.yml');
  writeFileSync(
    inventory,
    `defaults:
  user: root
  identity_file: ${p.sshKey}
  known_hosts: ${p.knownHosts}
  connect_timeout: 5
hosts:
  web-01: { address: ${SUBNET}.11, groups: [web] }
`,
  );
  playbook = path.join(dir, 'play.yml');
  writeFileSync(playbook, PLAY);
}, 180_000);

afterAll(async () => {
  await labDown(NAME);
}, 120_000);

describe('the task language on a real host', () => {
  let check: CliResult;
  let first: CliResult;

  it('--check on the fresh host: predicts, says "unknown" where a result decides, changes nothing', async () => {
    check = await provision(['-i', inventory, '-p', playbook, '--check', '--json']);
    expect(byStatus(check, 'failed')).toEqual([]);
    expect(check.code).toBe(2);
    expect(statusOf(check)).toEqual({
      'site directory (site alpha)': 'changed',
      'site directory (site beta)': 'changed',
      'read the marker': 'ok',
      'marker written once': 'unknown',
      'only on debian': 'changed',
      'never on redhat': 'skipped',
      'fast path available': 'ok',
      'fallback config': 'unknown',
      'always stamp': 'changed',
      'sites counted': 'unknown',
    });
    expect(taskResults(check).find((e) => e.task === 'marker written once')?.msg).toBe('depends on marker');
    expect(taskResults(check).find((e) => e.task === 'sites counted')?.msg).toBe('depends on count');
    const untouched = await hostExec('web-01', ['sh', '-c', 'test -e /srv/lang && echo present || echo absent'], NAME);
    expect(untouched.stdout.trim()).toBe('absent');
  });

  it('the first run changes what --check said would change, and only where it said changed or unknown', async () => {
    first = await provision(['-i', inventory, '-p', playbook, '--json']);
    expect(byStatus(first, 'failed')).toEqual([]);
    expect(first.code).toBe(2);
    expect(statusOf(first)).toEqual({
      'site directory (site alpha)': 'changed',
      'site directory (site beta)': 'changed',
      'read the marker': 'ok',
      'marker written once': 'changed',
      'only on debian': 'changed',
      'never on redhat': 'skipped',
      // The block's command failed (no fast path): the rescue took it over.
      'fast path available': 'ignored',
      'fallback config': 'changed',
      'always stamp': 'changed',
      'sites counted': 'ok',
    });
    // The dry run predicted every change: each was "changed" or "unknown" there, never "ok" or "skipped".
    const predicted = statusOf(check);
    for (const task of byStatus(first, 'changed')) expect([task, predicted[task]]).toEqual([task, expect.stringMatching(/^(changed|unknown)$/)]);
    for (const task of byStatus(check, 'changed')) expect([task, statusOf(first)[task]]).toEqual([task, 'changed']);
    const onHost = await hostExec('web-01', ['sh', '-c', 'cat /srv/lang/marker /srv/lang/os /srv/lang/mode /srv/lang/always; ls /srv/lang'], NAME);
    expect(onHost.stdout).toBe('converged\ndebian\nfallback\nalways\nalpha\nalways\nbeta\nmarker\nmode\nos\n');
  });

  it('the second run changes nothing and exits 0 (the marker read, the rescue taken, the count not a change)', async () => {
    const second = await provision(['-i', inventory, '-p', playbook, '--json']);
    expect(byStatus(second, 'changed')).toEqual([]);
    expect(byStatus(second, 'failed')).toEqual([]);
    expect(statusOf(second)['marker written once']).toBe('skipped');
    expect(statusOf(second)['fallback config']).toBe('ok');
    expect(second.code).toBe(0);
  });
});

describe('become_user and play vars on a real host', () => {
  const BECOME = `
- name: become_user on a real host
  hosts: all
  vars:
    stamp: "{{ inventory_hostname }} ran it as {{ who.stdout }}"
  tasks:
    - { name: the app account, user: { name: app, system: true } }
    - name: who runs it
      command: { cmd: id -un }
      become: true
      become_user: app
      register: who
      changed_when: false
    - { name: stamp, copy: { dest: /srv/lang/who, content: "{{ stamp }}\\n" } }
`;

  it('a command with become_user: app runs as app (id -un registers "app"); --check says so; a play var reads the result', async () => {
    const file = path.join(dir, 'become.yml');
    writeFileSync(file, BECOME);
    const check = await provision(['-i', inventory, '-p', file, '--check', '--json']);
    expect(byStatus(check, 'failed')).toEqual([]);
    expect(statusOf(check)).toMatchObject({ 'who runs it': 'ok', stamp: 'unknown' });
    const run = await provision(['-i', inventory, '-p', file, '--json']);
    expect(byStatus(run, 'failed')).toEqual([]);
    expect(statusOf(run)).toEqual({ 'the app account': 'changed', 'who runs it': 'ok', stamp: 'changed' });
    const onHost = await hostExec('web-01', ['cat', '/srv/lang/who'], NAME);
    expect(onHost.stdout).toBe('web-01 ran it as app\n');
  });
});
