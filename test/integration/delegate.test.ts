/**
 * delegate_to on real hosts (instance l4d, two fresh lab hosts): a play on web-01 runs one task on
 * web-02's connection with web-01's vars, and a run_once task delegated to web-02 from a play on both
 * runs there once; --check changes nothing; a second run changes nothing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { writeInventory } from './faults-helpers.ts';

const NAME = 'l4d';
const SUBNET = '10.110.0';
let inventory: string;
let playbook: string;

const PLAY = `
- name: from web-01
  hosts: web-01
  vars: { greeting: hello }
  tasks:
    - name: local note
      copy: { dest: /srv/delegate-local, content: "{{ greeting }} from {{ inventory_hostname }}\\n" }
    - name: note on web-02
      copy: { dest: "/srv/delegated-by-{{ inventory_hostname }}", content: "{{ greeting }} from {{ inventory_hostname }}\\n" }
      delegate_to: web-02
- name: both
  hosts: web
  tasks:
    - name: once, on web-02
      command: { cmd: "echo {{ inventory_hostname }} >> /srv/once", creates: /srv/once }
      delegate_to: web-02
      run_once: true
`;

type Event = Record<string, unknown>;
const results = (r: CliResult): Event[] => r.events.filter((e) => e.kind === 'task-result');
const changed = (r: CliResult) => results(r).filter((e) => e.status === 'changed').map((e) => `${String(e.host)}: ${String(e.task)}`).sort();
const onHost = async (host: string, script: string) => (await hostExec(host, ['sh', '-c', script], NAME)).stdout;

beforeAll(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-delegate-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['web-01', 'web-02'], pebble: false });
  inventory = writeInventory(dir, NAME, SUBNET);
  playbook = path.join(dir, 'play.yml');
  writeFileSync(playbook, PLAY);
}, 180_000);

afterAll(async () => {
  await labDown(NAME);
}, 120_000);

describe('delegate_to on real hosts', () => {
  it("--check changes nothing; the run writes on web-02 with web-01's vars, once for run_once; the second run changes nothing", async () => {
    const check = await provision(['-i', inventory, '-p', playbook, '--check', '--json']);
    expect(results(check).filter((e) => e.status === 'failed')).toEqual([]);
    expect(check.code).toBe(2);
    expect(await onHost('web-02', 'ls /srv')).toBe('');

    const first = await provision(['-i', inventory, '-p', playbook, '--json']);
    expect(results(first).filter((e) => e.status === 'failed'), first.stderr).toEqual([]);
    expect(first.code).toBe(2);
    expect(changed(check)).toEqual(changed(first));
    expect(await onHost('web-02', 'cat /srv/delegated-by-web-01; ls /srv')).toBe('hello from web-01\ndelegated-by-web-01\nonce\n');
    expect(await onHost('web-01', 'ls /srv')).toBe('delegate-local\n');
    // run_once: one line, written by whichever host reached the task first, on web-02.
    expect((await onHost('web-02', 'cat /srv/once')).trim()).toMatch(/^web-0[12]$/);
    expect(results(first).find((e) => e.task === 'note on web-02')?.note).toBe('delegated to web-02');

    const second = await provision(['-i', inventory, '-p', playbook, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(changed(second)).toEqual([]);
  });
});
