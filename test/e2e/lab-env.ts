/**
 * What end-to-end tests share: which lab instance and inventory they run against, and a way to
 * run the real CLI. PROVISION_E2E_INSTANCE picks a lab instance (default: "default"), whose
 * inventory is inventory/lab.yml (default) or inventory/<instance>.yml.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { hostExec, inClient, labHosts, labPaths } from '../../src/lab/index.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const INSTANCE = process.env.PROVISION_E2E_INSTANCE ?? 'default';
export const INVENTORY = INSTANCE === 'default' ? 'lab' : INSTANCE;
export const paths = () => labPaths(INSTANCE);
export const hosts = () => labHosts(INSTANCE);
export const address = (host: string) => {
  const a = hosts()[host];
  if (!a) throw new Error(`lab ${INSTANCE} has no host ${host}`);
  return a;
};

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Parsed events when run with --json. */
  events: Array<Record<string, unknown>>;
}

/** Run `provision ARGS` as a user would (a child process), with the e2e inventory unless given. */
export function provision(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  // Commands that take no inventory: lab, and the plan file commands.
  const noInventory = args.includes('-i') || args.includes('--inventory') || ['lab', 'apply', 'show'].includes(args[0] ?? '');
  const full = noInventory ? args : [...args, '--inventory', INVENTORY];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/provision.mjs'), ...full], {
      cwd: ROOT,
      env: { ...process.env, CI: '1', NO_COLOR: '1', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs ?? 900_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const events = full.includes('--json')
        ? stdout
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [];
      resolve({ code: code ?? 255, stdout, stderr, events });
    });
  });
}

/** Run a command in the lab's client namespace ("the internet"). */
export const fromClient = (cmd: string[], timeoutMs = 30_000) => inClient(cmd, INSTANCE, { timeoutMs });

/** Run a command on a lab host over SSH (root, lab key, host key checked). */
export const onHost = (host: string, cmd: string, timeoutMs = 60_000) => hostExec(host, ['sh', '-c', cmd], INSTANCE, { timeoutMs });

/** Count changed tasks in a --json run. */
export function changedTasks(r: CliResult): Array<Record<string, unknown>> {
  return r.events.filter((e) => e.kind === 'task-result' && e.status === 'changed');
}
