import type { Secret } from '../util/secrets.js';

/** How to reach a host and act on it: the same whatever format the inventory was written in. */
export interface ResolvedConnection {
  user: string;
  port: number;
  identityFile?: string;
  /** The identity file's passphrase, asked on the terminal before connecting (prepareHosts). */
  identityPassphrase?: Secret;
  agent?: string;
  knownHosts: string;
  acceptNewHostKeys: boolean;
  jump?: string;
  become: boolean;
  becomeUser: string;
  becomePasswordEnv?: string;
  /** The sudo password itself (Ansible's ansible_become_password); wins over becomePasswordEnv. */
  becomePassword?: Secret;
  connectTimeoutMs: number;
  /** Bound of each command that changes the host; undefined: the module's own (see transport/remote-command.ts). */
  commandTimeoutMs?: number;
  /** Bound of each batch of state reads; undefined: 60 s. */
  probeTimeoutMs?: number;
  /** How later commands travel (the inventory's `channel`, else $PROVISION_CHANNEL); undefined: 'persistent'. */
  channel?: 'exec' | 'persistent';
}

export interface Host {
  name: string;
  address: string;
  /** Every group the host is in, including ancestors and the implicit `all`. */
  groups: string[];
  vars: Record<string, unknown>;
  connection: ResolvedConnection;
}

export interface Inventory {
  name: string;
  /** The inventory file, or the folder of an Ansible inventory directory. */
  file: string;
  hosts: Map<string, Host>;
  /** group name → host names (transitively through children), including `all`. */
  groups: Map<string, string[]>;
  /** Secrets known so far: those of the inventory file at once, others (vault, secrets_command) as they are read. */
  secrets: Secret[];
  /** Things the loader ignored or could not honour (unknown ansible_* keys, ssh options), each once. */
  warnings?: string[];
  /**
   * "file:line:col" where a host's var was set (the definition that won: host, group or top-level
   * vars, a group_vars/ or host_vars/ file); undefined when the host has no such var or the loader
   * keeps no positions. For errors and warnings about role vars.
   */
  varSource?(host: string, name: string): string | undefined;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Ansible's --vault-password-file: a file holding the password, or an executable that prints it. */
  vaultPasswordFile?: string;
  /** Whether a password or passphrase may be asked on the terminal (default: stdin and stderr are terminals). */
  interactive?: boolean;
  /** The ssh_config file to read: default ~/.ssh/config (from $HOME of env); false: none. */
  sshConfig?: string | false;
  /** Told each warning as it arises (the CLI prints them); they are also kept in Inventory.warnings. */
  onWarning?: (message: string) => void;
}
