import { previousRelease, type HostReleases } from './host-state.js';

/** What a deploy (or a rollback) does on one web host. */
export interface HostStep {
  host: string;
  from?: string;
  to: string;
  /** The release must be sent to the host first (it does not have it). */
  ship: boolean;
  /** `current` changes (else the host already runs `to`: nothing is done to it). */
  change: boolean;
}

export interface DeployPlan {
  steps: HostStep[];
  /** The hosts that change, in batches of `batch`, in inventory order: one batch out of the load balancers at a time. */
  batches: string[][];
}

function inBatches(steps: HostStep[], batch: number): string[][] {
  const changing = steps.filter((s) => s.change).map((s) => s.host);
  const out: string[][] = [];
  for (let i = 0; i < changing.length; i += batch) out.push(changing.slice(i, i + batch));
  return out;
}

/** Every host to `target`; a host that runs it already is left alone, one that has it is not sent it again. */
export function planDeploy(hosts: Array<{ host: string; state: HostReleases }>, target: string, batch: number): DeployPlan {
  const steps = hosts.map(({ host, state }) => ({
    host,
    from: state.current,
    to: target,
    ship: !state.installed.some((r) => r.id === target),
    change: state.current !== target,
  }));
  return { steps, batches: inBatches(steps, batch) };
}

/** Every host back one release (the one it ran before). Throws, naming them, when hosts have none to go back to. */
export function planRollback(hosts: Array<{ host: string; state: HostReleases }>, batch: number): DeployPlan {
  const missing: string[] = [];
  const steps = hosts.map(({ host, state }) => {
    const prev = previousRelease(state);
    if (!prev || !state.current) missing.push(host);
    return { host, from: state.current, to: prev ?? '', ship: false, change: Boolean(prev && state.current) };
  });
  if (missing.length) throw new NoPreviousRelease(missing);
  return { steps, batches: inBatches(steps, batch) };
}

export class NoPreviousRelease extends Error {
  constructor(readonly hosts: string[]) {
    super(`no earlier release to go back to on ${hosts.join(', ')}: nothing rolled back`);
  }
}

/** The plan as lines: which release goes to which host, in which batch. */
export function describePlan(plan: DeployPlan, verb = 'deploy'): string[] {
  const batchOf = new Map<string, number>();
  plan.batches.forEach((b, i) => b.forEach((h) => batchOf.set(h, i + 1)));
  return plan.steps.map((s) =>
    s.change
      ? `${s.host}: ${verb} ${s.from ?? '(none)'} → ${s.to} (batch ${batchOf.get(s.host)}${s.ship ? ', release sent' : ', release already there'})`
      : `${s.host}: runs ${s.to} already, unchanged`,
  );
}
