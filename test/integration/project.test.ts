/**
 * A project made by `provision init`, converged on a real host from ITS folder (--project, the
 * command started elsewhere): its YAML role (loop, when, register, template, handler, vars schema from meta), its
 * TypeScript role and its TypeScript module, all loaded at run time. --check before the first run
 * predicts exactly what the first run changes; the second run changes nothing.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';

const NAME = 'extp';
const SUBNET = '10.82.0.0/24';
const ROOT = path.resolve(import.meta.dirname, '../..');
let project: string;
let elsewhere: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  events: Array<Record<string, unknown>>;
}

/** The CLI as a user runs it, started in a folder that is neither the repository nor the project. */
function provision(args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/provision.cjs'), ...args], { cwd: elsewhere, env: { ...process.env, CI: '1', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), 600_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code: code ?? 255, stdout, stderr, events });
    });
  });
}

const changed = (r: Result) =>
  r.events
    .filter((e) => e.kind === 'task-result' && e.status === 'changed')
    .map((e) => String(e.task))
    .sort();
const statusOf = (r: Result, status: string) =>
  r.events
    .filter((e) => e.kind === 'task-result' && e.status === status)
    .map((e) => String(e.task))
    .sort();
const failed = (r: Result) => r.events.filter((e) => e.kind === 'task-result' && e.status === 'failed');

async function onHost(script: string): Promise<string> {
  return (await hostExec('web-01', ['sh', '-c', script], NAME)).stdout;
}

beforeAll(async () => {
  project = path.join(mkdtempSync(path.join(tmpdir(), 'provision-extp-')), 'site');
  elsewhere = mkdtempSync(path.join(tmpdir(), 'provision-extp-cwd-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: SUBNET, only: ['web-01'], pebble: false });
});

afterAll(async () => {
  await labDown(NAME);
});

describe('a project made by provision init, on a lab host', () => {
  it('init scaffolds the project', async () => {
    const r = await provision(['init', project, '--lab', NAME]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const f of ['README.md', 'inventory/lab.yml', 'playbooks/site.yml', 'roles/example/tasks/main.yml', 'roles/example-ts/index.ts', 'modules/example.ts', 'test/cases/example/absent.json']) {
      expect(existsSync(path.join(project, f)), f).toBe(true);
    }
  });

  it('--check before the first run predicts its changes and changes nothing; the first run makes them; the second changes nothing', async () => {
    const before = await onHost('ls -la /etc | sort; ls /etc/provision-example 2>&1');
    const check = await provision(['--project', project, '-i', 'lab', '--check', '--json']);
    expect(failed(check), check.stderr).toEqual([]);
    expect(check.code, check.stderr).toBe(2);
    expect(await onHost('ls -la /etc | sort; ls /etc/provision-example 2>&1')).toBe(before);

    const first = await provision(['--project', project, '-i', 'lab', '--json']);
    expect(failed(first), first.stderr).toEqual([]);
    expect(first.code, first.stderr).toBe(2);
    const made = ['example folders (/etc/provision-example)', 'example folders (/etc/provision-example/conf.d)', 'example module', 'example-ts file', 'greeting changed', 'greeting file', 'kernel file'];
    expect(changed(first)).toEqual(made.sort());
    // The dry run predicts every change but the one whose when reads a command's output, which it
    // does not run: that task is "unknown", not guessed either way.
    expect(changed(check)).toEqual(made.filter((t) => t !== 'kernel file').sort());
    expect(statusOf(check, 'unknown')).toEqual(['kernel file']);
    expect(await onHost('cat /etc/provision-example/greeting.txt /etc/provision-example/module.txt /etc/provision-example-ts.txt /etc/provision-example/greeting.changed; stat -c %a /etc/provision-example/greeting.txt; test -d /etc/provision-example/conf.d && echo dir')).toBe(
      'hello from the example role, from web-01\nwritten by the example module\nwritten by the example-ts role (web-01)\nhello from the example role\n644\ndir\n',
    );
    expect(await onHost('cat /etc/provision-example/kernel.txt')).toBe(`kernel ${(await onHost('uname -r')).trim()}\n`);

    const second = await provision(['--project', project, '-i', 'lab', '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(changed(second)).toEqual([]);
  });
});
