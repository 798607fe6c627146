import { homedir } from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { InventoryError } from '../util/errors.js';
import type { Secret } from '../util/secrets.js';
import type { ResolvedConnection } from './model.js';
import type { ConnectionSettings } from './schema.js';
import type { SshConfig } from './ssh-config.js';

/** `~` and `~/…` as the home directory. */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p;
}

/**
 * $PROVISION_CHANNEL (exec or persistent), for a run whose inventory does not say: a benchmark's
 * before/after, or one run by exec without editing the inventory. Anything else is refused before a
 * host is contacted.
 */
export function channelFromEnv(value: string | undefined): ResolvedConnection['channel'] {
  if (value === undefined || value === '') return undefined;
  if (value === 'exec' || value === 'persistent') return value;
  throw new InventoryError(`PROVISION_CHANNEL=${JSON.stringify(value)}: expected exec or persistent (or unset: the inventory's channel, else persistent)`);
}

/** A jump host as written: an inventory host, or [user@]address[:port]. */
export const JUMP_SYNTAX = /^([^@\s]+@)?[^@\s:]+(:\d+)?$/;

export interface ConnectionSources {
  /** The inventory's name for the host. */
  name: string;
  /** The address the inventory gives (ssh_config's Host patterns are matched against it). */
  address: string;
  /** Settings the inventory sets explicitly: they win over ssh_config, which wins over defaults. */
  settings: ConnectionSettings;
  resolvePath: (p: string) => string;
  sshConfig?: SshConfig;
  isInventoryHost: (name: string) => boolean;
  /** The sudo password, when the inventory holds one (read when first needed: it may be a vault value). */
  becomePassword?: () => Secret | undefined;
  /** "file:line:col: field" of the jump setting, for errors about it. */
  jumpAt?: () => string;
  /** $PROVISION_CHANNEL of the load (LoadContext.channel): used where the inventory sets no channel. */
  envChannel?: ResolvedConnection['channel'];
}

/**
 * How to reach a host: the inventory's settings, then ~/.ssh/config's for the host's address
 * (HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump, UserKnownHostsFile), then defaults.
 */
export function resolveConnection(src: ConnectionSources): { address: string; connection: ResolvedConnection } {
  const c = src.settings;
  const ssh = src.sshConfig?.lookup(src.address);
  const address = ssh?.hostName ?? src.address;
  const user = c.user ?? ssh?.user ?? process.env.USER ?? 'root';
  const port = c.port ?? ssh?.port ?? 22;
  const tokens = { host: src.address, hostName: address, port, user, localUser: process.env.USER ?? 'root' };
  const fromSshConfig = (p: string) => src.sshConfig!.expandPath(p, tokens);

  let identityFile = c.identity_file ? src.resolvePath(c.identity_file) : undefined;
  let identityFromSshConfig = false;
  if (!identityFile && ssh?.identityFiles.length) {
    // OpenSSH tries each and skips those that do not exist; ssh2 takes one key: the first that exists.
    identityFile = ssh.identityFiles.map(fromSshConfig).find((f) => existsSync(f));
    identityFromSshConfig = identityFile !== undefined;
  }
  const agentSetting = c.ssh_agent === true ? process.env.SSH_AUTH_SOCK : typeof c.ssh_agent === 'string' ? src.resolvePath(c.ssh_agent) : undefined;
  let agent = agentSetting;
  if (c.ssh_agent === undefined) {
    if (!identityFile) agent = process.env.SSH_AUTH_SOCK;
    // ssh_config's IdentityFile adds to the agent's keys unless IdentitiesOnly says otherwise.
    else if (identityFromSshConfig && !ssh?.identitiesOnly) agent = process.env.SSH_AUTH_SOCK;
  }

  let knownHosts = c.known_hosts ? src.resolvePath(c.known_hosts) : undefined;
  if (!knownHosts && ssh?.userKnownHostsFiles?.length) knownHosts = fromSshConfig(ssh.userKnownHostsFiles[0]!);
  knownHosts ??= path.join(homedir(), '.ssh', 'known_hosts');

  let jump = c.jump ?? ssh?.proxyJump;
  const jumpAt = () => (c.jump !== undefined ? (src.jumpAt?.() ?? src.name) : `${ssh?.from.proxyJump}: ssh_config ProxyJump (host ${src.name})`);
  if (jump !== undefined) {
    if (jump.includes(',')) throw new InventoryError(`${jumpAt()}: "${jump}" is a chain of jump hosts; provision jumps through one (make the first a host of the inventory with its own jump)`);
    if (!src.isInventoryHost(jump) && !JUMP_SYNTAX.test(jump)) throw new InventoryError(`${jumpAt()}: "${jump}" is neither an inventory host nor [user@]address[:port]`);
    if (jump === src.name) throw new InventoryError(`${jumpAt()}: host ${src.name} cannot jump through itself`);
    if (!src.isInventoryHost(jump) && src.sshConfig) jump = jumpThroughSshConfig(jump, src.sshConfig);
  }

  const connection: ResolvedConnection = {
    user,
    port,
    identityFile,
    agent,
    knownHosts,
    acceptNewHostKeys: c.accept_new_host_keys ?? false,
    jump,
    become: c.become ?? false,
    becomeUser: c.become_user ?? 'root',
    becomePasswordEnv: c.become_password_env,
    connectTimeoutMs: (c.connect_timeout ?? 10) * 1000,
    commandTimeoutMs: c.command_timeout === undefined ? undefined : c.command_timeout * 1000,
    probeTimeoutMs: c.probe_timeout === undefined ? undefined : c.probe_timeout * 1000,
    // The inventory's setting wins: a fleet whose audit needs every command in sudo's log says
    // `channel: exec`, and no variable left in an operator's shell turns that off.
    channel: c.channel ?? src.envChannel,
  };
  if (src.becomePassword) {
    const read = src.becomePassword;
    let value: { v: Secret | undefined } | undefined;
    Object.defineProperty(connection, 'becomePassword', {
      enumerable: true,
      configurable: true,
      get: () => (value ??= { v: read() }).v,
    });
  }
  return { address, connection };
}

/** A jump host named by an ssh_config alias: its HostName, User and Port, where the jump does not say them. */
function jumpThroughSshConfig(jump: string, sshConfig: SshConfig): string {
  const m = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(jump)!;
  const cfg = sshConfig.lookup(m[2]!);
  if (cfg.hostName === undefined && cfg.user === undefined && cfg.port === undefined) return jump;
  const user = m[1] ?? cfg.user;
  const port = m[3] ?? cfg.port;
  return `${user ? `${user}@` : ''}${cfg.hostName ?? m[2]}${port !== undefined ? `:${port}` : ''}`;
}
