// What our site manages on each host, from our own expanded task list: the files it writes (copy,
// template, lineinfile), the paths it makes or removes (file), the units it runs (service) and the
// packages it installs (apt). The bench's equivalence check (bench/idiomatic.mjs) compares exactly
// these on hosts converged by us and by the idiomatic Ansible playbook.
//
//   tsx bench/site-files.ts INVENTORY PLAYBOOK   → {"HOST": {files, paths, units, packages}, …} on stdout
import path from 'node:path';
import { ConnectionPool, expandPlay, loadPlaybook } from '../src/executor/index.js';
import { isBound } from '../src/executor/bind.js';
import { gatherFacts } from '../src/facts/index.js';
import { loadInventory, selectHosts } from '../src/inventory/index.js';
import '../src/roles/builtin.js';

const [inventoryName, playbookFile] = process.argv.slice(2);
if (!inventoryName || !playbookFile) {
  process.stderr.write('usage: site-files.ts INVENTORY PLAYBOOK\n');
  process.exit(4);
}

const inventory = loadInventory(inventoryName);
const playbook = loadPlaybook(path.resolve(playbookFile));
const pool = new ConnectionPool(inventory);
const out: Record<string, { files: string[]; paths: string[]; units: string[]; packages: string[] }> = {};
try {
  for (const host of inventory.hosts.values()) {
    const conn = await pool.connect(host);
    const facts = await gatherFacts(conn);
    const mine = { files: new Set<string>(), paths: new Set<string>(), units: new Set<string>(), packages: new Set<string>() };
    for (const play of playbook.plays) {
      if (!selectHosts(inventory, play.hosts).includes(host.name)) continue;
      const expansion = expandPlay(play, host, facts, inventory, playbook.file);
      if (!expansion.ok) throw expansion.error;
      for (const task of expansion.play.tasks) {
        // Unbound: skipped by `when`, or failing on this host; neither is something the site manages.
        if (!isBound(task)) continue;
        const p = task.params as Record<string, unknown>;
        const module = task.meta.module;
        if (module === 'copy' || module === 'template') mine.files.add(String(p.dest));
        else if (module === 'lineinfile') mine.files.add(String(p.path));
        else if (module === 'file') mine.paths.add(String(p.path));
        else if (module === 'service') mine.units.add(String(p.name));
        else if (module === 'apt' && p.state !== 'absent') for (const n of p.packages as string[]) mine.packages.add(n);
      }
    }
    out[host.name] = { files: [...mine.files].sort(), paths: [...mine.paths].sort(), units: [...mine.units].sort(), packages: [...mine.packages].sort() };
  }
} finally {
  await pool.closeAll();
}
process.stdout.write(JSON.stringify(out) + '\n');
