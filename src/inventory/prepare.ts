import { unlockIdentity } from './identity.js';
import type { Inventory } from './model.js';

export interface PrepareOptions {
  /** Resolve every var of the hosts too (a run reads them all; `ping` and `facts` need none). */
  vars?: boolean;
  /** Whether passphrases may be asked on the terminal (default: stdin and stderr are terminals). */
  interactive?: boolean;
}

/**
 * Before any connection: everything the selected hosts need from the inventory, so a wrong vault
 * password, a failing secrets_command, a var cycle or a locked key is bad input (exit 4) with no
 * host contacted, rather than a failure half way through a run. Inventory jump hosts of the
 * selected hosts are prepared for connecting too. Hosts not selected are not touched: a vault file
 * only they read is never opened.
 */
export function prepareHosts(inv: Inventory, names: string[], opts: PrepareOptions = {}): void {
  const done = new Set<string>();
  const prepare = (name: string, withVars: boolean) => {
    const host = inv.hosts.get(name);
    if (!host || done.has(name)) return;
    done.add(name);
    void host.address;
    const c = host.connection;
    void c.becomePassword;
    unlockIdentity(host, opts.interactive);
    if (withVars) for (const k of Object.keys(host.vars)) void host.vars[k];
    if (c.jump) prepare(c.jump, false);
  };
  for (const n of names) prepare(n, opts.vars ?? true);
}
