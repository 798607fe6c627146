import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { errorMessage, ModuleError } from '../../util/errors.js';
import { isAnyAddress, parseNetwork } from '../lib/cidr.js';
import type { Change, Command, ModuleContext, ModuleDef, Plan } from '../contract.js';
import { describeRule, ruleArgs, runConnectionVerdict, sshAllowed, sshRulesText, wantedRule } from './rules.js';
import { FRESH_UFW, ruleKey, ufwState, type RunConnection, type UfwRule, type UfwState } from './state.js';
import { applyScript, asCommand, CONFIRM_EXIT, confirmScript, rollbackNowScript } from './transaction.js';

export { parseRunConnection, parseTuple, parseUfwState, PROBE_SCRIPT, ufwState } from './state.js';
export type { RunConnection, UfwHostState, UfwRule, UfwState } from './state.js';
export { runConnectionVerdict, sshAllowed } from './rules.js';

const address = z
  .string()
  .refine((s) => isAnyAddress(s) || parseNetwork(s) !== undefined, 'an IP address, a CIDR network or "any"');
const policy = z.enum(['deny', 'allow', 'reject']);
const PORT_SPEC = /^\d{1,5}(:\d{1,5})?(,\d{1,5}(:\d{1,5})?)*$/;

const ruleSchema = z
  .strictObject({
    rule: z.enum(['allow', 'deny', 'reject', 'limit']),
    /** 22, "8000:8100" (a range) or "80,443" (a list). */
    port: z.union([z.number().int().min(1).max(65535), z.string().regex(PORT_SPEC, 'a port, a range like 8000:8100 or a list like 80,443')]).optional(),
    /** vrrp (IP protocol 112, keepalived's adverts; ufw ≥ 0.36.2, /etc/protocols from netbase) takes no port. */
    proto: z.enum(['tcp', 'udp', 'any', 'vrrp']).optional(),
    from: address.optional(),
    to: address.optional(),
    /** Never starting with "-": ufw reads options such as --dry-run anywhere among its arguments. */
    comment: z.string().regex(/^(?!-)/, 'a comment that does not start with "-" (ufw would read it as an option)').optional(),
  })
  .refine((r) => !(typeof r.port === 'string' && /[:,]/.test(r.port) && (r.proto ?? 'any') === 'any'), 'a port range or list needs proto tcp or udp')
  .refine((r) => !(r.proto === 'vrrp' && r.port !== undefined), 'proto vrrp takes no port');

const params = z.strictObject({
  state: z.enum(['enabled', 'disabled', 'reset']).optional(),
  default_incoming: policy.optional(),
  default_outgoing: policy.optional(),
  default_routed: policy.optional(),
  logging: z.enum(['off', 'low', 'medium', 'high', 'full']).optional(),
  rules: z.array(ruleSchema).optional(),
  /** Delete every rule not listed, so the host ends up with exactly the listed set. */
  purge_other_rules: z.boolean().default(false),
  /**
   * The control machine's address or network. Lockout guard: a task that enables ufw, or leaves it
   * enabled with incoming deny/reject, is refused unless its rules let this source reach ssh_port/tcp.
   */
  admin_source: address.optional(),
  ssh_port: z.number().int().min(1).max(65535).default(22),
  /**
   * The second lockout guard needs no setting: the address this run connects from (SSH_CONNECTION on
   * the host) must be able to open a new SSH connection under the resulting rules, or the task is
   * refused before anything is applied. `true` applies such a rule set anyway (moving administration
   * to another address; with commit-confirm on, the change then rolls back when the new login fails).
   */
  allow_locking_out_this_run: z.boolean().default(false),
  /**
   * Commit-confirm: the change is rolled back on the host after this many seconds (counted from the
   * start of the apply) unless a new SSH connection succeeds and confirms it first.
   */
  commit_confirm_seconds: z.number().int().min(10).max(3600).optional(),
});
export type UfwParams = z.input<typeof params>;
type Params = z.output<typeof params>;

function currentState(ctx: ModuleContext): { state: UfwState; note?: string } {
  const { state } = ctx.read(ufwState());
  if (state.installed) return { state };
  if (ctx.check && ctx.predicted.packagesInstalled.has('ufw')) {
    return { state: { ...FRESH_UFW }, note: 'ufw is not on the host yet; an earlier task in this run would install it' };
  }
  throw new ModuleError('ufw is not installed on the host (install the ufw package first)');
}

/**
 * The guard that looks at the run itself: would the connection this run came in on be let in again
 * under the rules the task leaves behind? The answer comes from the host (SSH_CONNECTION), so it is
 * right whatever admin_cidrs say, and through a jump host it is the jump host's address.
 */
function refuseLockingOutThisRun(conn: RunConnection, rules: UfwRule[], incoming: UfwState['defaults']['incoming'], enabling: boolean): void {
  const verdict = runConnectionVerdict(rules, incoming, conn);
  if (verdict.admitted) return;
  throw new ModuleError(
    `refusing to ${enabling ? 'enable' : 'change'} ufw: this run connects from ${conn.client} (SSH_CONNECTION on the host) to ${conn.server} port ${conn.port}/tcp, ` +
      `and under the resulting rules a new connection from ${conn.client} would be refused (decided by: ${verdict.by}); ` +
      `rules for ${conn.port}/tcp: ${sshRulesText(rules, conn.port)}. Nothing was applied. ` +
      `Add ${conn.client} to admin_cidrs (or a rule allowing it), or, to lock this machine out on purpose, set firewall_allow_locking_out_this_run: true ` +
      `(ufw module: allow_locking_out_this_run: true)`,
  );
}

export const ufwModule: ModuleDef<Params> = {
  name: 'ufw',
  schema: params,
  probes: () => [ufwState()],
  plan(p, ctx): Plan {
    const { state: found, note: foundNote } = currentState(ctx);
    const notes = foundNote ? [foundNote] : [];
    const changes: Change[] = [];
    const first: string[][] = [];
    const ruleSteps: string[][] = [];
    const last: string[][] = [];
    const change = (action: string) => changes.push({ kind: 'firewall', target: 'ufw', action });

    let cur = found;
    const reset = p.state === 'reset';
    if (reset) {
      // Like Ansible: a reset always runs. Afterwards ufw is disabled with no rules.
      change('reset');
      first.push(['ufw', '--force', 'reset']);
      cur = { ...cur, enabled: false, rules: [] };
    } else if (p.state === 'disabled' && cur.enabled) {
      change('disable');
      first.push(['ufw', 'disable']);
    }

    // Rules: add the missing, update the ones differing only in action/comment, purge the rest.
    const wanted = (p.rules ?? []).map(wantedRule);
    const wantedKeys = new Set<string>();
    for (const w of wanted) {
      if (wantedKeys.has(ruleKey(w))) throw new ModuleError(`ufw: two rules match the same traffic (${describeRule(w)})`);
      wantedKeys.add(ruleKey(w));
    }
    let finalRules = [...cur.rules];
    for (const w of wanted) {
      const i = finalRules.findIndex((r) => ruleKey(r) === ruleKey(w));
      const have = finalRules[i];
      if (!have) {
        change(describeRule(w));
        ruleSteps.push(ruleArgs(w, 'add'));
        finalRules.push(w);
      } else if (have.action !== w.action || have.log !== w.log || have.comment !== w.comment) {
        const was = [have.action !== w.action || have.log !== w.log ? `${have.action}${have.log ? ` ${have.log}` : ''}` : '', have.comment !== w.comment ? `comment "${have.comment}"` : '']
          .filter(Boolean)
          .join(', ');
        change(`${describeRule(w)}${w.comment ? ` comment "${w.comment}"` : ''} (was ${was})`);
        ruleSteps.push(ruleArgs(w, 'update'));
        finalRules[i] = w;
      }
    }
    if (p.purge_other_rules) {
      for (const r of cur.rules.filter((x) => !wantedKeys.has(ruleKey(x)))) {
        change(`delete ${describeRule(r)}`);
        ruleSteps.push(ruleArgs(r, 'delete'));
      }
      finalRules = finalRules.filter((x) => wantedKeys.has(ruleKey(x)));
    }

    // Defaults and logging; after a reset they are set again whatever the old files said.
    const defaults = [
      ['incoming', p.default_incoming],
      ['outgoing', p.default_outgoing],
      ['routed', p.default_routed],
    ] as const;
    for (const [dir, want] of defaults) {
      if (want && (reset || cur.defaults[dir] !== want)) {
        change(`default ${dir} ${want}`);
        last.push(['ufw', 'default', want, dir]);
      }
    }
    if (p.logging && (reset || cur.logging !== p.logging)) {
      change(`logging ${p.logging}`);
      last.push(['ufw', 'logging', p.logging]);
    }
    const enabling = p.state === 'enabled' && !cur.enabled;
    if (enabling) {
      change('enable');
      last.push(['ufw', '--force', 'enable']);
    }
    if (changes.length === 0) return { changes: [], commands: [], note: foundNote };

    // Lockout guards, before any command: SSH must survive what this task leaves behind.
    const finalEnabled = p.state === 'enabled' || (p.state === undefined && cur.enabled);
    const finalIncoming = p.default_incoming ?? cur.defaults.incoming;
    if (p.admin_source && finalEnabled && (enabling || finalIncoming !== 'allow')) {
      if (!sshAllowed(finalRules, p.admin_source, p.ssh_port, ctx.host.address)) {
        throw new ModuleError(
          `refusing to ${enabling ? 'enable ufw' : 'change ufw'}: the resulting rules do not allow SSH (${p.ssh_port}/tcp) from admin_source ${p.admin_source}, ` +
            `so this run would lock the control machine out; add a rule like { rule: allow, port: ${p.ssh_port}, proto: tcp, from: ${p.admin_source} }`,
        );
      }
    }
    const conn = ctx.read(ufwState()).runConnection;
    if (finalEnabled) {
      if (!conn) notes.push("this run's own address could not be read on the host (SSH_CONNECTION): only admin_source and commit-confirm guard against a lockout");
      else if (p.allow_locking_out_this_run) {
        if (!runConnectionVerdict(finalRules, finalIncoming, conn).admitted) notes.push(`allow_locking_out_this_run: new connections from ${conn.client} (this run) will be refused`);
      } else refuseLockingOutThisRun(conn, finalRules, finalIncoming, enabling);
    }

    // Rules go in before the defaults and before "enable": SSH is allowed before anything could block it.
    const steps = [...first, ...ruleSteps, ...last];
    const window = p.commit_confirm_seconds && finalEnabled ? p.commit_confirm_seconds : 0;
    const id = randomBytes(6).toString('hex');
    const apply: Command = {
      kind: 'shell',
      cmd: asCommand(applyScript({ id, windowSeconds: window, steps })),
      describe: `apply ${steps.length} ufw command${steps.length === 1 ? '' : 's'} as one transaction${window ? ` (commit-confirm ${window}s)` : ''}`,
    };
    const plan: Plan = { changes, commands: [apply] };
    if (window) {
      notes.push(`commit-confirm: the change is rolled back in ${window}s unless a new SSH connection succeeds`);
      plan.verify = (vctx) => confirm(vctx, id, window);
    }
    if (notes.length) plan.note = notes.join('; ');
    return plan;
  },
};

/**
 * Commit-confirm's second half: a NEW connection proves the host still lets the control machine in
 * (an established session survives a firewall that refuses new ones), then the rollback is disarmed
 * under the transaction's lock. Every outcome is reported as it happened on the host.
 */
async function confirm(ctx: ModuleContext, id: string, window: number): Promise<void> {
  try {
    if (ctx.reconnect) await ctx.reconnect();
    else await ctx.run('true');
  } catch (err) {
    const why = errorMessage(err);
    // Undo at once over the session we still have, rather than leave the host shut for the rest of the window.
    let undone: { stdout: string; code: number } | undefined;
    let undoError = '';
    try {
      undone = await ctx.run(rollbackNowScript(id));
    } catch (e) {
      undoError = errorMessage(e);
    }
    if (undone?.code === 0 && /rolled-back/.test(undone.stdout)) {
      throw new ModuleError(
        `a new SSH connection failed after the ufw change (${why}); rolled back at once over the run's existing connection: the previous ufw files and state are in place`,
      );
    }
    if (undone && /nothing to roll back: rolled-back/.test(undone.stdout)) {
      throw new ModuleError(`a new SSH connection failed after the ufw change (${why}); the host had already rolled the change back (its ${window}s window ran out)`);
    }
    const detail = undone ? `the rollback over the existing connection answered: ${undone.stdout.trim() || `exit ${undone.code}`}` : `the existing connection did not answer either (${undoError})`;
    throw new ModuleError(
      `a new SSH connection failed after the ufw change (${why}); ${detail}; the host's own rollback restores the previous ufw files and state within ${window}s of the start of the change`,
    );
  }
  const res = await ctx.run(asCommand(confirmScript(id)));
  const said = res.stdout.trim().split('\n').pop() ?? '';
  switch (res.code) {
    case CONFIRM_EXIT.confirmed:
      return;
    case CONFIRM_EXIT.alreadyRolledBack:
      throw new ModuleError(
        `the ufw change was rolled back before it could be confirmed: the commit_confirm_seconds window (${window}s, counted from the start of the apply) ran out first; ` +
          'the previous ufw files and state are in place (raise commit_confirm_seconds on a slow host)',
      );
    case CONFIRM_EXIT.rollbackFailed:
      throw new ModuleError(`the ufw change was not confirmed in time and the host's rollback FAILED (${said}): check the firewall from the host's console`);
    default:
      throw new ModuleError(`could not confirm the ufw change (exit ${res.code}: ${said}); the host's rollback restores the previous ufw files and state within ${window}s of the start of the change`);
  }
}

