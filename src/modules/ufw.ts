import { z } from 'zod';
import { STATE_DIR } from '../facts/index.js';
import { ModuleError } from '../util/errors.js';
import { quote, shellJoin } from '../util/quote.js';
import { isAnyAddress, networkContains, networksOverlap, normaliseAddress, parseNetwork } from './lib/cidr.js';
import type { Change, Command, ModuleContext, ModuleDef, Plan } from './types.js';

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
    proto: z.enum(['tcp', 'udp', 'any']).optional(),
    from: address.optional(),
    to: address.optional(),
    comment: z.string().optional(),
  })
  .refine((r) => !(typeof r.port === 'string' && /[:,]/.test(r.port) && (r.proto ?? 'any') === 'any'), 'a port range or list needs proto tcp or udp');

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
   * Commit-confirm: before changing an active firewall, schedule a rollback on the host in this many
   * seconds; the task cancels it only after a new SSH connection succeeds.
   */
  commit_confirm_seconds: z.number().int().min(10).max(3600).optional(),
});
export type UfwParams = z.input<typeof params>;
type Params = z.output<typeof params>;

type Policy = z.infer<typeof policy>;

/** One ufw rule as ufw stores it (a "### tuple ###" line), with addresses normalised. */
export interface UfwRule {
  action: string;
  /** '', 'log' or 'log-all'. */
  log: string;
  proto: string;
  dport: string;
  dst: string;
  sport: string;
  src: string;
  dapp: string;
  sapp: string;
  direction: string;
  ifaceIn: string;
  ifaceOut: string;
  forward: boolean;
  comment: string;
}

export interface UfwState {
  installed: boolean;
  enabled: boolean;
  defaults: { incoming: Policy; outgoing: Policy; routed: Policy };
  logging: string;
  rules: UfwRule[];
}

/** A fresh Debian install of the package: what a dry run plans against when ufw is not there yet. */
export const FRESH_UFW: UfwState = {
  installed: false,
  enabled: false,
  defaults: { incoming: 'deny', outgoing: 'allow', routed: 'deny' },
  logging: 'low',
  rules: [],
};

const PROBE_KEY = 'ufw:state';

/**
 * ufw's own files, not `ufw status`: they are machine-readable (one "### tuple ###" line per rule),
 * they are the same whether the firewall is active or not, and reading them takes no iptables lock.
 */
const PROBE_SCRIPT = [
  'if [ -x /usr/sbin/ufw ] || command -v ufw >/dev/null 2>&1; then echo installed; else echo missing; fi',
  // One grep for the four files (each command costs the host a few ms): "FILE:LINE", see ufwLine.
  "grep -HE '^(ENABLED|LOGLEVEL|DEFAULT_(INPUT|OUTPUT|FORWARD)_POLICY)=|^### tuple ### ' /etc/ufw/ufw.conf /etc/default/ufw /etc/ufw/user.rules /etc/ufw/user6.rules 2>/dev/null",
  'true',
].join('\n');

/** A line of the probe's grep ("FILE:LINE") as parseUfwState reads it: "KEY=VALUE", or "v4 TUPLE"/"v6 TUPLE". */
function ufwLine(line: string): string {
  const m = /^(\/\S*?):(.*)$/.exec(line);
  if (!m) return line;
  const [, file = '', rest = ''] = m;
  if (!rest.startsWith('### tuple ### ')) return rest;
  if (file.endsWith('/user.rules')) return `v4 ${rest.slice(14)}`;
  if (file.endsWith('/user6.rules')) return `v6 ${rest.slice(14)}`;
  return '';
}

const POLICIES: Record<string, Policy> = { DROP: 'deny', ACCEPT: 'allow', REJECT: 'reject' };

function normaliseRuleAddress(a: string): string {
  try {
    return normaliseAddress(a);
  } catch {
    return a; // something ufw wrote that we cannot parse: compare it as text
  }
}

/** One "### tuple ###" line (without the marker): action proto dport dst sport src [dapp sapp] direction[_iface]. */
export function parseTuple(line: string): UfwRule | undefined {
  let text = line.trim();
  let comment = '';
  const c = text.indexOf(' comment=');
  if (c >= 0) {
    comment = Buffer.from(text.slice(c + 9).trim(), 'hex').toString('utf8');
    text = text.slice(0, c);
  }
  const f = text.split(/\s+/);
  if (f.length < 6 || f.length > 9) return undefined;
  let [action = '', proto = '', dport = '', dst = '', sport = '', src = ''] = f;
  let dapp = '';
  let sapp = '';
  if (f.length >= 8) {
    dapp = f[6] === '-' ? '' : f[6]!.replace(/%20/g, ' ');
    sapp = f[7] === '-' ? '' : f[7]!.replace(/%20/g, ' ');
  }
  let direction = 'in';
  let ifaceIn = '';
  let ifaceOut = '';
  if (f.length === 7 || f.length === 9) {
    const d = f[f.length - 1]!;
    direction = d.split('_')[0]!;
    for (const part of d.split('!')) {
      if (part.startsWith('in_')) ifaceIn = part.slice(3);
      else if (part.startsWith('out_')) ifaceOut = part.slice(4);
    }
  }
  let forward = false;
  if (action.includes(':')) {
    forward = true;
    action = action.split(':')[1]!;
  }
  let log = '';
  const u = action.indexOf('_');
  if (u >= 0) {
    log = action.slice(u + 1);
    action = action.slice(0, u);
  }
  return {
    action,
    log,
    proto,
    dport,
    dst: normaliseRuleAddress(dst),
    sport,
    src: normaliseRuleAddress(src),
    dapp,
    sapp,
    direction,
    ifaceIn,
    ifaceOut,
    forward,
    comment,
  };
}

/** What a rule matches (everything but action, log type and comment): ufw's own notion of "the same rule". */
function ruleKey(r: UfwRule): string {
  return JSON.stringify([r.forward, r.direction, r.ifaceIn, r.ifaceOut, r.proto, r.src, r.sport, r.dst, r.dport, r.sapp, r.dapp]);
}

export function parseUfwState(stdout: string | undefined): UfwState {
  const lines = (stdout ?? '').split('\n');
  const state: UfwState = { ...FRESH_UFW, defaults: { ...FRESH_UFW.defaults }, rules: [], installed: lines[0]?.trim() === 'installed' };
  const seen = new Set<string>();
  for (const raw of lines.slice(1)) {
    const line = ufwLine(raw.trim());
    const kv = /^([A-Z_]+)="?([^"]*)"?$/.exec(line);
    if (kv) {
      const [, k, v = ''] = kv;
      if (k === 'ENABLED') state.enabled = v === 'yes';
      else if (k === 'LOGLEVEL') state.logging = v;
      else if (k === 'DEFAULT_INPUT_POLICY') state.defaults.incoming = POLICIES[v] ?? 'deny';
      else if (k === 'DEFAULT_OUTPUT_POLICY') state.defaults.outgoing = POLICIES[v] ?? 'allow';
      else if (k === 'DEFAULT_FORWARD_POLICY') state.defaults.routed = POLICIES[v] ?? 'deny';
      continue;
    }
    if (line.startsWith('v4 ') || line.startsWith('v6 ')) {
      const rule = parseTuple(line.slice(3));
      // ufw keeps an "any to any" rule twice, once per IP version: one logical rule for us.
      if (rule && !seen.has(ruleKey(rule))) {
        seen.add(ruleKey(rule));
        state.rules.push(rule);
      }
    }
  }
  return state;
}

function wantedRule(r: z.infer<typeof ruleSchema>): UfwRule {
  return {
    action: r.rule,
    log: '',
    proto: r.proto ?? 'any',
    dport: r.port === undefined ? 'any' : String(r.port),
    dst: normaliseAddress(r.to ?? 'any'),
    sport: 'any',
    src: normaliseAddress(r.from ?? 'any'),
    dapp: '',
    sapp: '',
    direction: 'in',
    ifaceIn: '',
    ifaceOut: '',
    forward: false,
    comment: r.comment ?? '',
  };
}

/** "allow 80/tcp from 10.77.0.10", "deny any from 10.0.0.0/8 to 10.77.0.11" */
export function describeRule(r: UfwRule): string {
  const port = r.dapp ? `app ${r.dapp}` : r.dport === 'any' ? (r.proto === 'any' ? 'any' : `any/${r.proto}`) : r.proto === 'any' ? r.dport : `${r.dport}/${r.proto}`;
  let s = `${r.forward ? 'route ' : ''}${r.action}${r.log ? ` ${r.log}` : ''}${r.direction === 'out' ? ' out' : ''} ${port} from ${r.src}`;
  if (r.sport !== 'any' && !r.sapp) s += ` port ${r.sport}`;
  if (r.sapp) s += ` app ${r.sapp}`;
  if (r.dst !== 'any') s += ` to ${r.dst}`;
  if (r.ifaceIn) s += ` in on ${r.ifaceIn}`;
  if (r.ifaceOut) s += ` out on ${r.ifaceOut}`;
  return s;
}

/** The ufw command line for a rule: to add (or update in place) it, or to delete it. */
function ruleCommand(r: UfwRule, op: 'add' | 'update' | 'delete'): string {
  const a: string[] = ['ufw'];
  if (r.forward) a.push('route');
  if (op === 'delete') a.push('delete');
  a.push(r.action);
  if (r.forward || r.direction !== 'in' || r.ifaceIn || r.ifaceOut) {
    if (r.ifaceIn) a.push('in', 'on', r.ifaceIn);
    if (r.ifaceOut) a.push('out', 'on', r.ifaceOut);
    if (!r.ifaceIn && !r.ifaceOut) a.push(r.direction);
  }
  if (r.log) a.push(r.log);
  if (r.proto !== 'any' && !r.dapp && !r.sapp) a.push('proto', r.proto);
  a.push('from', r.src);
  if (r.sapp) a.push('app', r.sapp);
  else if (r.sport !== 'any') a.push('port', r.sport);
  a.push('to', r.dst);
  if (r.dapp) a.push('app', r.dapp);
  else if (r.dport !== 'any') a.push('port', r.dport);
  // Updating a rule to have no comment needs an explicit empty one; ufw ignores comments on delete.
  if ((op === 'add' && r.comment) || op === 'update') a.push('comment', r.comment);
  return shellJoin(a);
}

function portIncludes(spec: string, port: number): boolean {
  if (spec === 'any') return true;
  return spec.split(',').some((part) => {
    const [lo, hi] = part.split(':').map(Number);
    return hi === undefined ? lo === port : port >= lo! && port <= hi;
  });
}

/**
 * Would a new SSH connection from every address of `admin` reach the host under these rules?
 * ufw takes the first matching rule, so an earlier deny overlapping the admin's network counts
 * against it; without an explicit allow the answer is no (we never lean on a default policy).
 */
export function sshAllowed(rules: UfwRule[], admin: string, sshPort: number, hostAddress: string): boolean {
  const hostIsIp = parseNetwork(hostAddress) !== undefined;
  for (const r of rules) {
    if (r.forward || r.direction !== 'in' || r.dapp || r.sapp) continue;
    if (r.proto !== 'tcp' && r.proto !== 'any') continue;
    if (!portIncludes(r.dport, sshPort)) continue;
    const allows = r.action === 'allow' || r.action === 'limit';
    if (allows) {
      if (r.ifaceIn || r.sport !== 'any') continue;
      const dstOk = isAnyAddress(r.dst) || (hostIsIp && networkContains(r.dst, hostAddress));
      if (dstOk && networkContains(r.src, admin)) return true;
    } else {
      const dstHits = isAnyAddress(r.dst) || !hostIsIp || networksOverlap(r.dst, hostAddress);
      if (r.sport === 'any' && dstHits && networksOverlap(r.src, admin)) return false;
    }
  }
  return false;
}

const BACKUP_DIR = `${STATE_DIR}/ufw-backup`;
const ROLLBACK_UNIT = 'provision-ufw-rollback';

/** Restores the backed-up ufw files and brings the firewall back to its previous running state. */
function rollbackScript(): string {
  const b = quote(BACKUP_DIR);
  return [
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    `touch ${b}/rolling-back`,
    `cp -a ${b}/etc-ufw/. /etc/ufw/`,
    `cp -a ${b}/default-ufw /etc/default/ufw`,
    "if grep -q '^ENABLED=yes' /etc/ufw/ufw.conf; then ufw reload; else ufw --force disable; fi",
    `touch ${b}/rolled-back`,
  ].join('; ');
}

/** Back up ufw's files and schedule their restoration: systemd-run when there is systemd, a detached sleeper otherwise. */
export function scheduleRollbackCommand(seconds: number): Command {
  const b = quote(BACKUP_DIR);
  const unit = quote(ROLLBACK_UNIT);
  const script = [
    'set -e',
    `rm -rf ${b}`,
    `mkdir -p ${b}/etc-ufw`,
    `chmod 700 ${b}`,
    `cp -a /etc/ufw/. ${b}/etc-ufw/`,
    `cp -a /etc/default/ufw ${b}/default-ufw`,
    `R=${quote(rollbackScript())}`,
    `systemctl stop ${unit}.timer ${unit}.service >/dev/null 2>&1 || true`,
    `systemctl reset-failed ${unit}.timer ${unit}.service >/dev/null 2>&1 || true`,
    'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then',
    `  systemd-run --quiet --on-active=${seconds}s --unit=${unit} --description='provision: roll back a ufw change' /bin/sh -c "$R"`,
    'else',
    `  if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi`,
    `  nohup $S sh -c "sleep ${seconds}; $R" >/dev/null 2>&1 </dev/null &`,
    `  echo $! > ${b}/rollback.pid`,
    'fi',
  ].join('\n');
  return { kind: 'shell', cmd: `sh -c ${quote(script)}`, describe: `back up ufw and schedule its rollback in ${seconds}s` };
}

/** Cancels the scheduled rollback; exits 3 when it has already started (the change is being undone). */
export function cancelRollbackCommand(): string {
  const b = quote(BACKUP_DIR);
  const unit = quote(ROLLBACK_UNIT);
  return [
    `systemctl stop ${unit}.timer >/dev/null 2>&1`,
    `systemctl reset-failed ${unit}.timer ${unit}.service >/dev/null 2>&1`,
    `if [ -f ${b}/rollback.pid ]; then kill "$(cat ${b}/rollback.pid)" 2>/dev/null; rm -f ${b}/rollback.pid; fi`,
    `if [ -e ${b}/rolling-back ]; then echo 'the rollback already ran' >&2; exit 3; fi`,
    'echo cancelled',
  ].join('; ');
}

function currentState(ctx: ModuleContext): { state: UfwState; note?: string } {
  const state = parseUfwState(ctx.results.get(PROBE_KEY)?.stdout);
  if (state.installed) return { state };
  if (ctx.check && ctx.predicted.packagesInstalled.has('ufw')) {
    return { state: { ...FRESH_UFW }, note: 'ufw is not on the host yet; an earlier task in this run would install it' };
  }
  throw new ModuleError('ufw is not installed on the host (install the ufw package first)');
}

export const ufwModule: ModuleDef<Params> = {
  name: 'ufw',
  schema: params,
  probes: () => [{ key: PROBE_KEY, script: PROBE_SCRIPT }],
  plan(p, ctx): Plan {
    const { state: found, note } = currentState(ctx);
    const changes: Change[] = [];
    const first: string[] = [];
    const ruleCmds: string[] = [];
    const last: string[] = [];
    const change = (action: string) => changes.push({ kind: 'firewall', target: 'ufw', action });

    let cur = found;
    const reset = p.state === 'reset';
    if (reset) {
      // Like Ansible: a reset always runs. Afterwards ufw is disabled with no rules.
      change('reset');
      first.push('ufw --force reset');
      cur = { ...cur, enabled: false, rules: [] };
    } else if (p.state === 'disabled' && cur.enabled) {
      change('disable');
      first.push('ufw disable');
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
        ruleCmds.push(ruleCommand(w, 'add'));
        finalRules.push(w);
      } else if (have.action !== w.action || have.log !== w.log || have.comment !== w.comment) {
        const was = [have.action !== w.action || have.log !== w.log ? `${have.action}${have.log ? ` ${have.log}` : ''}` : '', have.comment !== w.comment ? `comment "${have.comment}"` : '']
          .filter(Boolean)
          .join(', ');
        change(`${describeRule(w)}${w.comment ? ` comment "${w.comment}"` : ''} (was ${was})`);
        ruleCmds.push(ruleCommand(w, 'update'));
        finalRules[i] = w;
      }
    }
    if (p.purge_other_rules) {
      for (const r of cur.rules.filter((x) => !wantedKeys.has(ruleKey(x)))) {
        change(`delete ${describeRule(r)}`);
        ruleCmds.push(ruleCommand(r, 'delete'));
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
        last.push(`ufw default ${want} ${dir}`);
      }
    }
    if (p.logging && (reset || cur.logging !== p.logging)) {
      change(`logging ${p.logging}`);
      last.push(`ufw logging ${p.logging}`);
    }
    const enabling = p.state === 'enabled' && !cur.enabled;
    if (enabling) {
      change('enable');
      last.push('ufw --force enable');
    }
    if (changes.length === 0) return { changes: [], commands: [], note };

    // Lockout guard, before any command: SSH from the admin must survive what this task leaves behind.
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

    const shell = (cmd: string): Command => ({ kind: 'shell', cmd });
    // Rules go in before the defaults and before "enable": SSH is allowed before anything could block it.
    const commands: Command[] = [...first, ...ruleCmds, ...last].map(shell);
    const plan: Plan = { changes, commands, note };
    if (p.commit_confirm_seconds && finalEnabled) {
      const seconds = p.commit_confirm_seconds;
      commands.unshift(scheduleRollbackCommand(seconds));
      plan.note = [note, `commit-confirm: the change is rolled back in ${seconds}s unless a new SSH connection succeeds`].filter(Boolean).join('; ');
      plan.verify = async (vctx) => {
        try {
          if (vctx.reconnect) await vctx.reconnect();
          else await vctx.run('true');
        } catch (err) {
          throw new ModuleError(`cannot open a new SSH connection after the ufw change: ${(err as Error).message}; the host rolls the change back within ${seconds}s`);
        }
        const res = await vctx.run(cancelRollbackCommand());
        if (res.code === 3) {
          throw new ModuleError(
            `the ufw change was confirmed too late: the commit_confirm_seconds window (${seconds}s, counted from before the change) ran out and the host's rollback had already started; ` +
              'the previous rules are being restored (raise commit_confirm_seconds on a slow host)',
          );
        }
        if (res.code !== 0) throw new ModuleError(`could not confirm the ufw change: ${res.stdout.trim() || `exit ${res.code}`}; the rollback restores the previous rules`);
      };
    }
    return plan;
  },
};
