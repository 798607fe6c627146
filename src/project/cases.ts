import type { Facts } from '../facts/index.js';
import type { Host } from '../inventory/index.js';
import { emptyPredictedState, type ModuleDef, type Plan } from '../modules/contract.js';

/** One case of a module: params, the recorded output of its probes (by key), and what the plan must be. */
export interface ModuleCase {
  description: string;
  params: unknown;
  /** Probe key → its recorded result; a probe without one reads as "no answer" (parse(undefined)). */
  probes?: Record<string, { stdout: string; code?: number }>;
  check?: boolean;
  /** Host vars and facts the module reads, when it does. */
  vars?: Record<string, unknown>;
  facts?: Record<string, unknown>;
  /** For the project's own test to compare: number of changes, and a substring of each command, in order. */
  expected: { changes: number; commands: string[] };
}

/**
 * A module's plan for a case, without a host: params parsed by its schema, each probe answered from
 * the recording. Pure, as plan() is: the way to test a module (README "Adding a module or a role").
 */
export async function planCase<P>(def: ModuleDef<P>, c: Omit<ModuleCase, 'expected' | 'description'>): Promise<Plan> {
  const params = def.schema.parse(c.params);
  const host: Host = {
    name: 'case-host',
    address: '192.0.2.1',
    groups: ['all'],
    vars: c.vars ?? {},
    connection: { user: 'root', port: 22, knownHosts: '/dev/null', acceptNewHostKeys: false, become: false, becomeUser: 'root', connectTimeoutMs: 10_000 },
  } as Host;
  const facts = (c.facts ?? {}) as unknown as Facts;
  def.probes(params, { host, facts }); // a module's probes must build from its params alone
  return def.plan(params, {
    host,
    facts,
    check: c.check ?? false,
    predicted: emptyPredictedState(),
    read: (probe) => {
      const r = c.probes?.[probe.key];
      return probe.parse(r ? { stdout: r.stdout, code: r.code ?? 0 } : undefined);
    },
    run: () => Promise.reject(new Error('planCase: a case has no host to run commands on (record the probe instead)')),
  });
}
