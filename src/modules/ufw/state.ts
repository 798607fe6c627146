/**
 * What the ufw module reads from the host, in one probe: ufw's own settings and rule files, and
 * the address this run's SSH connection comes from (for the lockout guard).
 */
import { normaliseAddress, parseNetwork } from '../lib/cidr.js';

export type Policy = 'deny' | 'allow' | 'reject';

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

/**
 * This run's own SSH connection as the host sees it (the first, third and fourth fields of
 * SSH_CONNECTION): the client address (the jump host's when the run goes through one), and the
 * address and port it reached. The client's port is left out: it changes with every connection,
 * and the probe's output is fingerprinted into plans.
 */
export interface RunConnection {
  client: string;
  server: string;
  port: number;
}

/** A fresh Debian install of the package: what a dry run plans against when ufw is not there yet. */
export const FRESH_UFW: UfwState = {
  installed: false,
  enabled: false,
  defaults: { incoming: 'deny', outgoing: 'allow', routed: 'deny' },
  logging: 'low',
  rules: [],
};

export const PROBE_KEY = 'ufw:state';

/**
 * SSH_CONNECTION of the login this command runs under. sudo does not pass the variable on, so
 * when it is not in our environment it is read from the environment of the processes above us
 * (the login shell that sudo was started from), which root may read. One grep for all of them;
 * nothing at all is started when the variable is there (a root login).
 */
const CONNECTION_SCRIPT = [
  'c=${SSH_CONNECTION:-}',
  'if [ -z "$c" ]; then',
  '  p=$PPID; n=0; envs=',
  '  while [ "$p" -gt 1 ] 2>/dev/null && [ $n -lt 12 ]; do',
  '    envs="$envs /proc/$p/environ"',
  // "pid (comm) state ppid …": the command name may hold spaces, so cut after its last ") ".
  '    read -r st < /proc/$p/stat || break; st=${st##*) }; st=${st#* }; p=${st%% *}; n=$((n+1))',
  '  done',
  // </dev/null: with no file to read, grep must not read the batch script that sh -s is reading.
  "  c=$(grep -zh '^SSH_CONNECTION=' $envs </dev/null 2>/dev/null | tr '\\0' '\\n')",
  '  c=${c%%\n*}; c=${c#SSH_CONNECTION=}',
  'fi',
  'set -- $c',
  'echo "CONNECTION=${1:-} ${3:-} ${4:-}"',
].join('\n');

/**
 * ufw's own files, not `ufw status`: they are machine-readable (one "### tuple ###" line per rule),
 * they are the same whether the firewall is active or not, and reading them takes no iptables lock.
 */
export const PROBE_SCRIPT = [
  'if [ -x /usr/sbin/ufw ] || command -v ufw >/dev/null 2>&1; then echo installed; else echo missing; fi',
  // One grep for the four files (each command costs the host a few ms): "FILE:LINE", see ufwLine.
  "grep -HE '^(ENABLED|LOGLEVEL|DEFAULT_(INPUT|OUTPUT|FORWARD)_POLICY)=|^### tuple ### ' /etc/ufw/ufw.conf /etc/default/ufw /etc/ufw/user.rules /etc/ufw/user6.rules 2>/dev/null",
  CONNECTION_SCRIPT,
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
export function ruleKey(r: UfwRule): string {
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

/** The run's own connection from the probe's CONNECTION line; undefined when the host did not tell. */
export function parseRunConnection(stdout: string | undefined): RunConnection | undefined {
  const m = /^CONNECTION=(\S+) (\S+) (\d+)\s*$/m.exec(stdout ?? '');
  if (!m) return undefined;
  // An IPv4 client over an IPv6 socket shows as ::ffff:a.b.c.d; ufw's IPv4 rules see a.b.c.d.
  const plain = (a: string) => a.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1');
  const client = plain(m[1]!);
  const server = plain(m[2]!);
  if (!parseNetwork(client) || !parseNetwork(server)) return undefined;
  return { client, server, port: Number(m[3]) };
}
