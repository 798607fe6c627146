import { existsSync } from 'node:fs';
import path from 'node:path';
import { InventoryError } from '../util/errors.js';
import type { Secret } from '../util/secrets.js';
import { channelFromEnv } from './connection.js';
import type { LoadOptions, ResolvedConnection } from './model.js';
import { SshConfig } from './ssh-config.js';
import { VaultKeyring } from './vault/keyring.js';

/** What the CLI sets once for every inventory it loads (--vault-password-file, where warnings go). */
let sessionDefaults: LoadOptions = {};

export function configureInventoryLoading(defaults: LoadOptions): void {
  sessionDefaults = { ...defaults };
}

/** The state of one load: options, the vault keyring, warnings, secrets found, ssh_config files. */
export class LoadContext {
  readonly env: NodeJS.ProcessEnv;
  readonly keyring: VaultKeyring;
  readonly warnings: string[] = [];
  readonly secrets: Secret[] = [];
  readonly interactive: boolean | undefined;
  /** $PROVISION_CHANNEL, checked when the load starts (a bad value is refused before any host is read). */
  readonly channel: ResolvedConnection['channel'];
  readonly #warned = new Set<string>();
  readonly #sshConfigs = new Map<string, SshConfig>();
  readonly #opts: LoadOptions;

  constructor(options: LoadOptions = {}) {
    this.#opts = { ...sessionDefaults, ...options };
    this.env = this.#opts.env ?? process.env;
    this.interactive = this.#opts.interactive;
    this.channel = channelFromEnv(this.env.PROVISION_CHANNEL);
    this.keyring = new VaultKeyring({ passwordFile: this.#opts.vaultPasswordFile, env: this.env, interactive: this.interactive });
  }

  /** Warn once per key. */
  warn(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.warnings.push(message);
    this.#opts.onWarning?.(message);
  }

  addSecret(s: Secret): void {
    if (!this.secrets.includes(s)) this.secrets.push(s);
  }

  /** Home of the user whose ~/.ssh/config is read: $HOME of the load's environment. */
  get home(): string | undefined {
    return this.env.HOME;
  }

  /**
   * The ssh_config to read: the inventory's choice (a path, or false for none), else the load
   * option, else ~/.ssh/config when it exists.
   */
  sshConfig(choice: string | false | undefined, relativeTo: string): SshConfig | undefined {
    const setting = choice ?? this.#opts.sshConfig;
    if (setting === false) return undefined;
    const home = this.home;
    let file: string | undefined;
    if (typeof setting === 'string') file = setting.startsWith('~/') && home ? path.join(home, setting.slice(2)) : path.resolve(relativeTo, setting);
    else if (home) file = path.join(home, '.ssh', 'config');
    if (!file || (setting === undefined && !existsSync(file))) return undefined;
    if (!existsSync(file)) throw new InventoryError(`ssh_config ${file}: no such file`, 'ssh_config: false reads none');
    let cfg = this.#sshConfigs.get(file);
    if (!cfg) {
      cfg = new SshConfig(file, home ?? path.dirname(path.dirname(file)), (m) => this.warn(`ssh_config:${m}`, m));
      this.#sshConfigs.set(file, cfg);
    }
    return cfg;
  }
}
