import { InventoryError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';
import type { ConnectionSettings } from '../schema.js';
import { shlexSplit } from '../shlex.js';
import { jumpOfProxyCommand } from '../ssh-config.js';
import type { HostVars } from '../vars/resolver.js';
import type { VarDef } from '../vars/values.js';

/*
 * Ansible's connection vars → our connection settings. The order is Ansible's ssh command line's
 * (plugins/connection/ssh.py), where ssh keeps the first value of each option: ansible_ssh_args,
 * then ansible_port / ansible_ssh_private_key_file / ansible_user, then ansible_ssh_common_args,
 * then ansible_ssh_extra_args.
 */

/** The ansible_* vars read here (aliases included); any other ansible_* var is warned about once. */
export const CONNECTION_VARS = new Set([
  'ansible_host',
  'ansible_ssh_host',
  'ansible_port',
  'ansible_ssh_port',
  'ansible_user',
  'ansible_ssh_user',
  'ansible_ssh_private_key_file',
  'ansible_private_key_file',
  'ansible_become',
  'ansible_become_user',
  'ansible_become_password',
  'ansible_become_pass',
  'ansible_become_method',
  'ansible_connection',
  'ansible_ssh_args',
  'ansible_ssh_common_args',
  'ansible_ssh_extra_args',
  'ansible_group_priority',
]);

/** Warn once per unknown ansible_* var name, naming where it was first seen. */
export function warnUnknownAnsibleVars(vars: ReadonlyMap<string, VarDef>, warn: (key: string, message: string) => void): void {
  for (const [name, def] of vars) {
    if (!name.startsWith('ansible_') || CONNECTION_VARS.has(name)) continue;
    const why =
      name === 'ansible_password' || name === 'ansible_ssh_pass'
        ? 'password logins are not supported (use a key or ssh-agent)'
        : name === 'ansible_host_key_checking' || name === 'ansible_ssh_host_key_checking'
          ? 'host keys are always verified'
          : 'not used by provision';
    warn(`var:${name}`, `${def.at}: ${name}: ${why}; ignored (said once)`);
  }
}

export interface AnsibleConnection {
  address: string;
  settings: ConnectionSettings;
  /** -F FILE in the ssh args (none → false); undefined: the default ssh_config. */
  sshConfigFile?: string | false;
  becomePassword?: () => Secret | undefined;
  /** Where the jump came from, for errors. */
  jumpAt?: string;
}

const BOOLEAN_TRUE = ['yes', 'on', '1', 'true', 'y', 't'];
const BOOLEAN_FALSE = ['no', 'off', '0', 'false', 'n', 'f', ''];

/** Options that only tune ssh's own connection handling: nothing to honour, nothing to warn about. */
const HARMLESS_OPTIONS = new Set([
  'controlmaster',
  'controlpersist',
  'controlpath',
  'serveraliveinterval',
  'serveralivecountmax',
  'tcpkeepalive',
  'compression',
  'loglevel',
  'connectionattempts',
  'identitiesonly',
  'gssapiauthentication',
  'preferredauthentications',
  'pubkeyauthentication',
  'passwordauthentication',
  'kbdinteractiveauthentication',
  'batchmode',
]);
const HARMLESS_FLAGS = new Set(['q', 'v', 'C', 'T', 't', '4', '6', 'n', 'N', 'x']);
const FLAGS_WITH_ARGUMENT = new Set(['B', 'b', 'c', 'D', 'E', 'e', 'F', 'I', 'i', 'J', 'L', 'l', 'm', 'O', 'o', 'p', 'Q', 'R', 'S', 'W', 'w']);

export function ansibleConnection(hv: HostVars, warn: (key: string, message: string) => void): AnsibleConnection {
  const host = hv.host;
  const first = (...names: string[]): { name: string; value: unknown; at: string } | undefined => {
    for (const name of names) {
      const def = hv.def(name);
      if (def) return { name, value: hv.get(name), at: def.at };
    }
    return undefined;
  };
  const bad = (v: { name: string; at: string }, what: string, got: unknown): never => {
    throw new InventoryError(`${v.at}: ${v.name}: expected ${what}, got ${describe(got)} (host ${host})`);
  };
  const text = (v: { name: string; value: unknown; at: string } | undefined): string | undefined => {
    if (!v || v.value === null) return undefined;
    if (typeof v.value === 'string' && v.value !== '') return v.value;
    if (typeof v.value === 'number') return String(v.value);
    return bad(v, 'a string', v.value);
  };
  const portOf = (v: { name: string; value: unknown; at: string } | undefined): number | undefined => {
    if (!v || v.value === null) return undefined;
    const n = typeof v.value === 'number' ? v.value : typeof v.value === 'string' && /^\d+$/.test(v.value.trim()) ? Number(v.value) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) bad(v, 'a port number', v.value);
    return n;
  };

  const settings: ConnectionSettings = {};
  let sshConfigFile: string | false | undefined;
  let jumpAt: string | undefined;
  let jumpDecided = false;
  const args = (v: { name: string; value: unknown; at: string } | undefined) => {
    const s = text(v);
    if (!v || s === undefined) return;
    const r = readSshArgs(s, `${v.at}: ${v.name}`, warn);
    settings.port ??= r.port;
    settings.user ??= r.user;
    settings.identity_file ??= r.identity;
    if (!jumpDecided && r.jump !== undefined) {
      jumpDecided = true;
      settings.jump = r.jump === 'none' ? undefined : r.jump;
      jumpAt = `${v.at}: ${v.name}`;
    }
    settings.known_hosts ??= r.knownHosts;
    settings.accept_new_host_keys ??= r.acceptNew;
    settings.connect_timeout ??= r.connectTimeout;
    if (sshConfigFile === undefined) sshConfigFile = r.sshConfig;
  };

  args(first('ansible_ssh_args'));
  settings.port ??= portOf(first('ansible_port', 'ansible_ssh_port'));
  settings.identity_file ??= text(first('ansible_ssh_private_key_file', 'ansible_private_key_file'));
  settings.user ??= text(first('ansible_user', 'ansible_ssh_user'));
  args(first('ansible_ssh_common_args'));
  args(first('ansible_ssh_extra_args'));

  const connection = first('ansible_connection');
  if (connection && !['ssh', 'smart', 'paramiko'].includes(String(connection.value))) {
    throw new InventoryError(`${connection.at}: ansible_connection: "${String(connection.value)}" is not supported: provision connects over SSH (host ${host})`);
  }
  const method = first('ansible_become_method');
  if (method && method.value !== 'sudo') {
    throw new InventoryError(`${method.at}: ansible_become_method: "${String(method.value)}" is not supported: provision becomes another user with sudo (host ${host})`);
  }
  const become = first('ansible_become');
  if (become && become.value !== null) {
    const v = become.value;
    if (typeof v === 'boolean') settings.become = v;
    else if (v === 0 || v === 1) settings.become = v === 1;
    else if (typeof v === 'string' && [...BOOLEAN_TRUE, ...BOOLEAN_FALSE].includes(v.trim().toLowerCase())) settings.become = BOOLEAN_TRUE.includes(v.trim().toLowerCase());
    else bad(become, 'true or false', v);
  }
  settings.become_user = text(first('ansible_become_user'));

  const passwordVar = ['ansible_become_password', 'ansible_become_pass'].find((n) => hv.has(n));
  const becomePassword = passwordVar
    ? () => {
        const v = first(passwordVar)!;
        if (v.value instanceof Secret) return v.value;
        if (v.value === null || v.value === '') return undefined;
        if (typeof v.value === 'string' || typeof v.value === 'number') return new Secret(passwordVar, String(v.value));
        return bad(v, 'a string', v.value);
      }
    : undefined;

  return { address: text(first('ansible_host', 'ansible_ssh_host')) ?? host, settings, sshConfigFile, becomePassword, jumpAt };
}

function describe(v: unknown): string {
  if (v instanceof Secret) return 'a secret';
  if (v === null) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

interface SshArgs {
  port?: number;
  user?: string;
  identity?: string;
  jump?: string;
  knownHosts?: string;
  acceptNew?: boolean;
  connectTimeout?: number;
  sshConfig?: string | false;
}

/** The settings an ssh argument string gives (the first of each, as ssh takes it); the rest warned about once. */
export function readSshArgs(text: string, at: string, warn: (key: string, message: string) => void): SshArgs {
  const words = shlexSplit(text);
  if (!words) throw new InventoryError(`${at}: cannot split "${text}" (an unclosed quote?)`);
  const out: SshArgs = {};
  const option = (raw: string) => {
    const m = /^([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+)([\s\S]*)$/.exec(raw.trim());
    if (!m) throw new InventoryError(`${at}: -o ${raw}: expected -o Option=value`);
    const [key, value] = [m[1]!.toLowerCase(), m[2]!.trim()];
    switch (key) {
      case 'proxyjump':
        out.jump ??= value.toLowerCase() === 'none' ? 'none' : value;
        return;
      case 'proxycommand': {
        if (value.toLowerCase() === 'none') {
          out.jump ??= 'none';
          return;
        }
        const jump = jumpOfProxyCommand(shlexSplit(value) ?? []);
        if (jump) out.jump ??= jump;
        else warn(`ssh:proxycommand:${at}`, `${at}: ProxyCommand is not run by provision (only "ssh -W %h:%p HOST" is read, as a jump host); ignored`);
        return;
      }
      case 'userknownhostsfile': {
        const file = value.split(/\s+/)[0]!;
        if (file === '/dev/null') {
          warn(`ssh:devnull:${at}`, `${at}: UserKnownHostsFile=/dev/null would never know a host key: provision always verifies them; ignored`);
          return;
        }
        out.knownHosts ??= file;
        return;
      }
      case 'stricthostkeychecking': {
        const v = value.toLowerCase();
        if (v === 'accept-new') out.acceptNew ??= true;
        else if (['no', 'off', 'false'].includes(v)) warn(`ssh:strict:${at}`, `${at}: StrictHostKeyChecking=${value}: provision always verifies host keys; ignored`);
        return;
      }
      case 'identityfile':
        out.identity ??= value;
        return;
      case 'port': {
        const n = Number(value);
        if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InventoryError(`${at}: -o Port=${value}: not a port number`);
        out.port ??= n;
        return;
      }
      case 'user':
        out.user ??= value;
        return;
      case 'connecttimeout': {
        const n = Number(value);
        if (Number.isFinite(n) && n > 0 && n <= 600) out.connectTimeout ??= n;
        return;
      }
    }
    if (!HARMLESS_OPTIONS.has(key)) warn(`ssh:o:${key}`, `${at}: ssh option ${m[1]} is not used by provision; ignored (said once)`);
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('-') || w === '-') {
      warn(`ssh:word:${at}`, `${at}: "${w}" is not an ssh option; ignored`);
      continue;
    }
    for (let j = 1; j < w.length; j++) {
      const flag = w[j]!;
      if (!FLAGS_WITH_ARGUMENT.has(flag)) {
        if (!HARMLESS_FLAGS.has(flag)) warn(`ssh:flag:${flag}`, `${at}: ssh flag -${flag} is not used by provision; ignored (said once)`);
        continue;
      }
      const arg = j + 1 < w.length ? w.slice(j + 1) : words[++i];
      if (arg === undefined) throw new InventoryError(`${at}: -${flag} needs a value`);
      switch (flag) {
        case 'o':
          option(arg);
          break;
        case 'J':
          out.jump ??= arg.toLowerCase() === 'none' ? 'none' : arg;
          break;
        case 'F':
          if (out.sshConfig === undefined) out.sshConfig = arg.toLowerCase() === 'none' ? false : arg;
          break;
        case 'i':
          out.identity ??= arg;
          break;
        case 'p': {
          const n = Number(arg);
          if (!/^\d+$/.test(arg) || n < 1 || n > 65535) throw new InventoryError(`${at}: -p ${arg}: not a port number`);
          out.port ??= n;
          break;
        }
        case 'l':
          out.user ??= arg;
          break;
        default:
          warn(`ssh:flag:${flag}`, `${at}: ssh flag -${flag} is not used by provision; ignored (said once)`);
      }
      break;
    }
  }
  return out;
}
