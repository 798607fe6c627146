/**
 * Rules as the module wants them, the ufw command lines that make them so, and the lockout guards:
 * could the admins, and could this very run, still open a new SSH connection under a rule set?
 */
import { shellJoin } from '../../util/quote.js';
import { isAnyAddress, networkContains, networksOverlap, normaliseAddress, parseNetwork } from '../lib/cidr.js';
import type { Policy, RunConnection, UfwRule } from './state.js';

/** A rule as a task gives it (the module's schema). */
export interface RuleParams {
  rule: 'allow' | 'deny' | 'reject' | 'limit';
  port?: number | string;
  proto?: 'tcp' | 'udp' | 'any' | 'vrrp';
  from?: string;
  to?: string;
  comment?: string;
}

export function wantedRule(r: RuleParams): UfwRule {
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

/** The ufw command line (as argv) for a rule: to add (or update in place) it, or to delete it. */
export function ruleArgs(r: UfwRule, op: 'add' | 'update' | 'delete'): string[] {
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
  return a;
}

export const ruleCommand = (r: UfwRule, op: 'add' | 'update' | 'delete'): string => shellJoin(ruleArgs(r, op));

export function portIncludes(spec: string, port: number): boolean {
  if (spec === 'any') return true;
  return spec.split(',').some((part) => {
    const [lo, hi] = part.split(':').map(Number);
    return hi === undefined ? lo === port : port >= lo! && port <= hi;
  });
}

/** An incoming rule that can concern TCP connections to `port` (whatever their source). */
function concernsTcpPort(r: UfwRule, port: number): boolean {
  return !r.forward && r.direction === 'in' && (r.proto === 'tcp' || r.proto === 'any') && (r.dapp !== '' || portIncludes(r.dport, port));
}

/**
 * Would a new SSH connection from every address of `admin` reach the host under these rules?
 * ufw takes the first matching rule, so an earlier deny overlapping the admin's network counts
 * against it; without an explicit allow the answer is no (we never lean on a default policy).
 */
export function sshAllowed(rules: UfwRule[], admin: string, sshPort: number, hostAddress: string): boolean {
  const hostIsIp = parseNetwork(hostAddress) !== undefined;
  for (const r of rules) {
    if (r.dapp || r.sapp || !concernsTcpPort(r, sshPort)) continue;
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

export interface ConnectionVerdict {
  admitted: boolean;
  /** What decides: "allow 22/tcp from 10.0.0.0/8", "loopback", "the default incoming policy (deny)". */
  by: string;
}

const LOOPBACK = ['127.0.0.0/8', '::1'];

/**
 * What ufw would do with a new connection like this run's own, under a rule set: the first rule
 * that matches decides, else the default incoming policy. A rule whose match we cannot know from
 * here (an interface, a source port, an application profile) counts for a deny and not for an
 * allow, so the answer errs towards "locked out".
 */
export function runConnectionVerdict(rules: UfwRule[], defaultIncoming: Policy, conn: RunConnection): ConnectionVerdict {
  // ufw's before.rules accept everything on lo before any user rule.
  if (LOOPBACK.some((n) => networkContains(n, conn.client))) return { admitted: true, by: 'loopback (ufw always accepts it)' };
  for (const r of rules) {
    if (!concernsTcpPort(r, conn.port)) continue;
    if (!networkContains(r.src, conn.client) || !networkContains(r.dst, conn.server)) continue;
    const uncertain = r.ifaceIn !== '' || r.sport !== 'any' || r.dapp !== '' || r.sapp !== '';
    const allows = r.action === 'allow' || r.action === 'limit';
    if (allows && uncertain) continue;
    return { admitted: allows, by: describeRule(r) };
  }
  return { admitted: defaultIncoming === 'allow', by: `the default incoming policy (${defaultIncoming})` };
}

/** The rules that concern SSH to `port`, for a message: "allow 22/tcp from 10.0.0.5, deny any from any". */
export function sshRulesText(rules: UfwRule[], port: number): string {
  const concerned = rules.filter((r) => concernsTcpPort(r, port));
  return concerned.length ? concerned.map(describeRule).join(', ') : 'none';
}
