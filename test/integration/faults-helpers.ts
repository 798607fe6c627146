/**
 * What the fault tests need beyond the lab API: a console on a lab host that does not go through
 * SSH (the faults break SSH on purpose: a firewall that refuses it, a host key that changed), the
 * run's generated inventory and playbooks, and a bounded poll.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { labPaths } from '../../src/lab/index.ts';
import type { CliResult } from '../e2e/lab-env.ts';

export interface ConsoleResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The pid of a lab host's init (systemd), the first child of its systemd-nspawn. */
function initPid(instance: string, host: string): number {
  const state = JSON.parse(readFileSync(labPaths(instance).stateFile, 'utf8')) as { hosts: Record<string, { nspawn?: { pid: number } }> };
  const nspawn = state.hosts[host]?.nspawn?.pid;
  if (!nspawn) throw new Error(`${host} of lab ${instance} is not running`);
  const children = readFileSync(`/proc/${nspawn}/task/${nspawn}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  if (!children.length) throw new Error(`${host}: systemd-nspawn ${nspawn} has no child yet`);
  return Number(children[0]);
}

/**
 * Run a shell script inside a lab host's namespaces, as root, without SSH: the "console" of the
 * host. Works whatever the host's firewall or host keys are.
 */
export function onConsole(instance: string, host: string, script: string, timeoutMs = 60_000): Promise<ConsoleResult> {
  const pid = initPid(instance, host);
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '--', '/usr/bin/env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C', '/bin/sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 255, stdout, stderr });
    });
  });
}

/** Poll `probe` every `everyMs` until it returns a value; undefined when `boundMs` runs out. */
export async function pollUntil<T>(probe: () => Promise<T | undefined | false>, boundMs: number, everyMs = 250): Promise<T | undefined> {
  const end = Date.now() + boundMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= end) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * An inventory for the instance's two web hosts, root over the lab key, its known_hosts checked.
 * `hosts` replaces the two web hosts' lines under hosts:, `extraHosts` lines go after them, `tail`
 * after those (vars:…); another known_hosts can be given.
 */
export function writeInventory(
  dir: string,
  instance: string,
  prefix: string,
  /** `file`: the inventory's name in `dir` (a `<name>.secrets.yml` beside it is read by the CLI); default a random one. */
  opts: { knownHosts?: string; acceptNew?: boolean; hosts?: string; extraHosts?: string; tail?: string; file?: string } = {},
): string {
  const p = labPaths(instance);
  const file = path.join(dir, opts.file ?? `inv-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(
    file,
    `defaults:
  user: root
  identity_file: ${p.sshKey}
  known_hosts: ${opts.knownHosts ?? p.knownHosts}
  connect_timeout: 5
  accept_new_host_keys: ${opts.acceptNew ?? false}
hosts:
${opts.hosts ?? `  web-01: { address: ${prefix}.11, groups: [web] }\n  web-02: { address: ${prefix}.12, groups: [web] }\n`}${opts.extraHosts ?? ''}${opts.tail ?? ''}`,
  );
  return file;
}

export function writePlaybook(dir: string, text: string): string {
  const file = path.join(dir, `play-${Math.random().toString(36).slice(2, 8)}.yml`);
  writeFileSync(file, text);
  return file;
}

type Event = Record<string, unknown>;
export interface Counts {
  ok: number;
  changed: number;
  failed: number;
  skipped: number;
  unreachable: number;
}

export function recap(r: CliResult): Record<string, Counts> {
  const e = r.events.find((x) => x.kind === 'recap') as { hosts: Record<string, Counts> } | undefined;
  if (!e) throw new Error(`no recap in the run's output:\n${r.stdout}\n${r.stderr}`);
  return e.hosts;
}

export function taskResult(r: CliResult, host: string, task: string): Event | undefined {
  return r.events.find((e) => e.kind === 'task-result' && e.host === host && e.task === task);
}

export function failures(r: CliResult, host?: string): Event[] {
  return r.events.filter((e) => e.kind === 'task-result' && e.status === 'failed' && (host === undefined || e.host === host));
}

export function changedOn(r: CliResult, host: string): Event[] {
  return r.events.filter((e) => e.kind === 'task-result' && e.status === 'changed' && e.host === host);
}
