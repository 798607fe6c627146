/**
 * What end-to-end tests share: which lab instance and inventory they run against, and a way to
 * run the real CLI. PROVISION_E2E_INSTANCE picks a lab instance (default: "default");
 * PROVISION_E2E_TOPOLOGY the site on it (topology.ts): `site` (default), whose inventory is
 * inventory/lab.yml (default instance) or inventory/<instance>.yml, or `split` (inventory/prod-split.yml
 * made into inventory/e2e-split-<instance>.yml by the global setup).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { loadInventory } from '../../src/inventory/index.ts';
import { hostExec, inClient, labHosts, labPaths } from '../../src/lab/index.ts';
import { inventoryName, topologyFrom } from './topology.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const INSTANCE = process.env.PROVISION_E2E_INSTANCE ?? 'default';
export const TOPOLOGY = topologyFrom(process.env.PROVISION_E2E_TOPOLOGY);
export const INVENTORY = inventoryName(TOPOLOGY, INSTANCE);
export const paths = () => labPaths(INSTANCE);
export const hosts = () => labHosts(INSTANCE);
export const address = (host: string) => {
  const a = hosts()[host];
  if (!a) throw new Error(`lab ${INSTANCE} has no host ${host}`);
  return a;
};

let groupsOfInventory: Map<string, string[]> | undefined;
/**
 * The hosts of an inventory group (with its child groups), in inventory order: the tests name hosts by
 * what they are (webservers, db_primary, databases…), so one file judges every topology. Throws on an
 * empty group, so that a test cannot pass by checking nobody.
 */
export function group(name: string): string[] {
  groupsOfInventory ??= loadInventory(INVENTORY).groups;
  const members = groupsOfInventory.get(name) ?? [];
  if (!members.length) throw new Error(`inventory ${INVENTORY} has no host in group ${name}`);
  return [...members];
}
/** The one host of a group that has exactly one (db_primary, db_replica in the lab's sites). */
export function only(name: string): string {
  const members = group(name);
  if (members.length !== 1) throw new Error(`inventory ${INVENTORY}: group ${name} has ${members.length} hosts (${members.join(', ')}), the test expects one`);
  return members[0]!;
}

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
    const child = spawn(process.execPath, [path.join(ROOT, 'bin/provision.cjs'), ...full], {
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
