/**
 * The CLI against real hosts (two lab hosts of the instance `cli`): the live view under a
 * pseudo-terminal with a changing, a failing and an unreachable host; every output mode piped into
 * `head -1`; ignore_errors end to end; and `provision apply` refusing, in its own real run, what its
 * plan does not show.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { provision } from '../e2e/lab-env.ts';
import { intoHeadOne, LIVE_VIEW_MARK, recapLine, STACK_TRACE, underTerminal, type OutputMode } from '../unit/cli/terminal-helpers.ts';
import { recap, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'cli';
const SUBNET = '10.96.0';
let dir: string;

const onHost = (host: string, script: string) => hostExec(host, ['sh', '-c', script], NAME);

/** web-01 and web-02, plus `dead`: a loopback port nobody listens on. */
function inventory(withDead = true): string {
  return writeInventory(dir, NAME, SUBNET, { extraHosts: withDead ? '  dead: { address: 127.0.0.1, port: 1 }\n' : '' });
}

/** Changes every run (unguarded), an ignored failure, and a task that fails where /root/fail-here exists. */
const MIXED = `
- name: mixed
  hosts: all
  tasks:
    - name: stamp
      command: { cmd: "date > /root/provision-cli-stamp" }
    - name: may fail
      command: { cmd: "false" }
      ignore_errors: true
    - name: fails where asked
      command: { cmd: "test ! -e /root/fail-here" }
`;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-cli-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['web-01', 'web-02'], pebble: false });
});

afterAll(async () => {
  await labDown(NAME);
});

beforeEach(async () => {
  await onHost('web-01', 'rm -f /root/fail-here /root/apply-* /root/provision-cli-stamp');
  await onHost('web-02', 'rm -f /root/apply-* /root/provision-cli-stamp; touch /root/fail-here');
});

describe('the live view under a pseudo-terminal, real hosts', () => {
  it('a changing, a failing and an unreachable host: exit 1, every host in the recap, the ignored failure said, no stack trace', async () => {
    const { code, screen, raw } = await underTerminal(['-i', inventory(), '-p', writePlaybook(dir, MIXED)]);
    expect(raw).toContain(LIVE_VIEW_MARK);
    expect(screen).not.toMatch(STACK_TRACE);
    expect(code, screen).toBe(1);
    expect(screen).toMatch(/^web-01: changed: stamp/m);
    expect(screen).toMatch(/^web-02: FAILED: fails where asked: /m);
    expect(screen).toMatch(/^web-01: FAILED \(ignored\): may fail: .* \.\.\.ignoring$/m);
    expect(screen).toMatch(/^dead: UNREACHABLE: root@127\.0\.0\.1:1: connection refused/m);
    expect(recapLine(screen, 'web-01')).toMatch(/ok=0\s+changed=2\s+failed=0\s+unreachable=0\s+skipped=0\s+ignored=1/);
    expect(recapLine(screen, 'web-02')).toMatch(/changed=1\s+failed=1\s+unreachable=0\s+skipped=0\s+ignored=1/);
    expect(recapLine(screen, 'dead')).toMatch(/unreachable=1/);
  });

  it('changing hosts only (the ignored failure does not count): exit 2', async () => {
    await onHost('web-02', 'rm -f /root/fail-here');
    const { code, screen } = await underTerminal(['-i', inventory(false), '-p', writePlaybook(dir, MIXED)]);
    expect(screen).not.toMatch(STACK_TRACE);
    expect(code, screen).toBe(2);
    for (const h of ['web-01', 'web-02']) expect(recapLine(screen, h)).toMatch(/changed=2\s+failed=0\s+unreachable=0\s+skipped=0\s+ignored=1/);
  });
});

describe('every output mode piped into head -1, real hosts', () => {
  it.each(['plain', 'json', 'live'] as OutputMode[])('%s: exit 1 as the run earned (web-02 fails), no stack trace, the hosts still converged', async (mode) => {
    const r = await intoHeadOne(mode, ['-i', inventory(), '-p', writePlaybook(dir, MIXED)]);
    expect(r.stderr).not.toMatch(STACK_TRACE);
    expect(r.stderr).not.toMatch(/EPIPE|EIO/);
    expect(r.code, r.stderr).toBe(1);
    // The reader went away after one line; the run did not: web-01 got its change.
    expect((await onHost('web-01', 'test -s /root/provision-cli-stamp && echo yes')).stdout.trim()).toBe('yes');
  });
});

describe('ignore_errors, --json', () => {
  it('the ignored failure is an event of its own and the recap counts it; the run exits 2, not 1', async () => {
    await onHost('web-02', 'rm -f /root/fail-here');
    const r = await provision(['-i', inventory(false), '-p', writePlaybook(dir, MIXED), '--json']);
    expect(r.code, r.stderr).toBe(2);
    const ignored = r.events.filter((e) => e.kind === 'task-result' && e.task === 'may fail');
    expect(ignored.map((e) => [e.host, e.status])).toEqual(expect.arrayContaining([['web-01', 'ignored'], ['web-02', 'ignored']]));
    expect(String(ignored[0]!.msg)).toContain('exited 1');
    expect(recap(r)['web-01']).toMatchObject({ failed: 0, ignored: 1, changed: 2 });
    expect(r.events.find((e) => e.kind === 'recap')).toMatchObject({ exitCode: 2 });
  });
});

describe('provision apply refuses, in its own run, what the plan does not show', () => {
  async function planFile(playbook: string): Promise<string> {
    const out = path.join(dir, `plan-${Math.random().toString(36).slice(2, 8)}.json`);
    const p = await provision(['plan', '-i', inventory(false), '-p', playbook, '--limit', 'web-01', '--out', out]);
    expect(p.code, p.stderr).toBe(2);
    return out;
  }

  it('state that changed after the check run, before the real run: refused before any task, nothing changed, exit 5', async () => {
    // The guard of the second task reads a counter: unchanged for the plan and apply's check run
    // (reads 1 and 2), changed for the real run (read 3): the state moved in between.
    const playbook = writePlaybook(
      dir,
      `
- name: apply guard
  hosts: web-01
  tasks:
    - name: planned change
      command: { cmd: "touch /root/apply-planned", creates: /root/apply-planned }
    - name: not in the plan
      command:
        cmd: "touch /root/apply-unplanned"
        unless: "n=$(cat /root/apply-counter 2>/dev/null || echo 0); echo $((n+1)) > /root/apply-counter; [ $n -lt 2 ]"
`,
    );
    const plan = await planFile(playbook);
    const r = await provision(['apply', plan]);
    expect(r.stderr).not.toMatch(STACK_TRACE);
    expect(r.code, r.stdout + r.stderr).toBe(5);
    expect(r.stderr).toMatch(/web-01: refused during the run.*\n.*changed since the plan: cmd:n=/);
    expect((await onHost('web-01', 'ls /root')).stdout).not.toMatch(/apply-planned|apply-unplanned/);
  });

  it('a task whose change check mode could not predict: the planned task ran, that one never did, exit 5', async () => {
    // In the plan, /root/apply-marker does not exist, so "clean up" has nothing to remove; in the real
    // run the task before it creates the file (check mode cannot know what a command does).
    const playbook = writePlaybook(
      dir,
      `
- name: apply guard
  hosts: web-01
  tasks:
    - name: make a marker
      command: { cmd: "touch /root/apply-marker" }
    - name: clean up
      command: { cmd: "rm /root/apply-marker; touch /root/apply-cleaned", removes: /root/apply-marker }
`,
    );
    const plan = await planFile(playbook);
    const r = await provision(['apply', plan, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(5);
    const results = r.events.filter((e) => e.kind === 'task-result').map((e) => [e.task, e.status]);
    expect(results).toEqual([
      ['make a marker', 'changed'],
      ['clean up', 'refused'],
    ]);
    expect(recap(r)['web-01']).toMatchObject({ changed: 1, refused: 1 });
    const files = (await onHost('web-01', 'ls /root')).stdout;
    expect(files).toContain('apply-marker');
    expect(files).not.toContain('apply-cleaned');
  });

  it('a plan that matches: applied, exit 2', async () => {
    const playbook = writePlaybook(dir, `
- name: apply guard
  hosts: web-01
  tasks:
    - name: planned change
      command: { cmd: "touch /root/apply-planned", creates: /root/apply-planned }
`);
    const plan = await planFile(playbook);
    const r = await provision(['apply', plan]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect((await onHost('web-01', 'ls /root')).stdout).toContain('apply-planned');
  });
});
