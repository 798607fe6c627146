import type { Command } from 'commander';
import { configureInventoryLoading, loadInventory, prepareHosts, selectHosts, VAULT_PASSWORD_ENV, type Host, type Inventory } from '../inventory/index.js';
import { maskDeep } from '../util/secrets.js';
import { requireInventory } from './main.js';

/*
 * The inventory side of the CLI: --vault-password-file on every command that reads an inventory,
 * warnings printed once per load, and `provision inventory`, which shows what was loaded (hosts,
 * groups, connection settings, with --vars the resolved vars, secrets masked) without connecting.
 */

/** Options every inventory-reading command takes. */
export function addInventoryOptions(cmd: Command): Command {
  return cmd.option('--vault-password-file <file>', `ansible-vault password: a file, or an executable that prints it (else $${VAULT_PASSWORD_ENV}, else asked on a terminal)`);
}

/** Called before a command runs: its options and where warnings go apply to every inventory it loads. */
export function applyInventoryOptions(o: { vaultPasswordFile?: string }): void {
  configureInventoryLoading({
    vaultPasswordFile: o.vaultPasswordFile,
    onWarning: (message) => process.stderr.write(`provision: warning: ${message}\n`),
  });
}

function connectionLine(h: Host): string {
  const c = h.connection;
  const parts = [`${c.user}@${h.address}:${c.port}`];
  if (c.jump) parts.push(`via ${c.jump}`);
  if (c.become) parts.push(`become ${c.becomeUser}`);
  if (c.identityFile) parts.push(`key ${c.identityFile}`);
  if (c.knownHosts) parts.push(`known_hosts ${c.knownHosts}`);
  return parts.join(', ');
}

export function inventoryReport(inv: Inventory, names: string[], withVars: boolean): Record<string, unknown> {
  const hosts: Record<string, unknown> = {};
  for (const n of names) {
    const h = inv.hosts.get(n)!;
    const { becomePassword, identityPassphrase: _p, ...connection } = h.connection;
    hosts[n] = {
      address: h.address,
      groups: h.groups,
      connection: { ...connection, ...(becomePassword ? { becomePassword: true } : {}) },
      ...(withVars ? { vars: { ...h.vars } } : {}),
    };
  }
  return maskDeep({ inventory: inv.file, groups: Object.fromEntries(inv.groups), hosts, warnings: inv.warnings ?? [] });
}

export function registerInventoryCommand(program: Command, addCommon: (cmd: Command) => Command): void {
  addCommon(program.command('inventory').description('show the loaded inventory: hosts, groups, connection settings (--vars: the vars, secrets masked); connects to nothing'))
    .option('--vars', "also each host's vars, resolved (vault values decrypted, shown masked)")
    .action(async (o: { inventory?: string; limit?: string; json?: boolean; vars?: boolean }) => {
      const inv = loadInventory(requireInventory(o));
      const names = selectHosts(inv, o.limit);
      prepareHosts(inv, names, { vars: Boolean(o.vars) });
      const report = inventoryReport(inv, names, Boolean(o.vars));
      if (o.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
        return;
      }
      const out: string[] = [`inventory ${inv.file}`, 'groups:'];
      for (const [g, hs] of inv.groups) out.push(`  ${g}: ${hs.join(', ') || '(no hosts)'}`);
      out.push('hosts:');
      for (const n of names) {
        const h = inv.hosts.get(n)!;
        out.push(`  ${n}: ${connectionLine(h)}`);
        if (o.vars) for (const [k, v] of Object.entries((report.hosts as Record<string, { vars: Record<string, unknown> }>)[n]!.vars)) out.push(`    ${k}: ${JSON.stringify(v)}`);
      }
      process.stdout.write(out.join('\n') + '\n');
    });
}
