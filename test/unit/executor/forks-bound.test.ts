/**
 * A run of more hosts than forks holds at most forks SSH connections at once: a host's connection is
 * closed while it waits for the others and opened again only when a later task needs it, so a
 * controller's memory does not grow with the fleet (README "Speed", #18). Against an in-process SSH
 * server (test/unit/helpers/sh-server.ts: commands run in this machine's sh) that counts the connections open at the same time;
 * every inventory host is a name for that one server.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_FORKS, loadPlaybook, runPlaybook, SshConnector } from '../../../src/executor/index.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { MemoryReporter } from '../../../src/report/renderers.js';
import { shServer, type ShServer } from '../helpers/sh-server.js';

const HOSTS = 12;
const FORKS = 3;

let server: ShServer;
let port: number;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'provision-forks-'));
  server = await shServer();
  port = server.port;
});
afterAll(async () => {
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** HOSTS names for the one server, each with its own known_hosts and its own file to write. */
function inventoryFile(): string {
  const file = path.join(tmp, 'inv.yml');
  const hosts = Array.from(
    { length: HOSTS },
    (_, i) => `  h${i}: { address: 127.0.0.1, port: ${port}, known_hosts: ${tmp}/known_hosts-${i}, vars: { n: ${i} } }`,
  );
  writeFileSync(file, `defaults: { user: root, become: false, accept_new_host_keys: true }\nhosts:\n${hosts.join('\n')}\n`);
  return file;
}

function playbookFile(): string {
  const file = path.join(tmp, 'play.yml');
  writeFileSync(
    file,
    `- name: one file per host
  hosts: all
  tasks:
    - { name: a file, copy: { dest: "${tmp}/out-{{ n }}.txt", content: "host {{ n }}\\n" } }
- name: a second play, after the first on every host
  hosts: all
  tasks:
    - { name: another file, copy: { dest: "${tmp}/second-{{ n }}.txt", content: "second {{ n }}\\n" } }
`,
  );
  return file;
}

async function run(forks?: number) {
  const inventory = loadInventory(inventoryFile());
  server.resetCounts();
  const connector = new SshConnector(inventory);
  const res = await runPlaybook({ inventory, playbook: loadPlaybook(playbookFile()), check: false, forks, connector, reporter: new MemoryReporter() });
  return { res, peakOpen: server.peakOpen, accepted: server.accepted };
}

describe('a run of more hosts than forks', () => {
  it('holds at most forks connections at once, and still changes every host in both plays', async () => {
    const r = await run(FORKS);
    expect(Object.values(r.res.hosts).map((o) => [o.counts.changed, o.counts.failed, o.counts.unreachable])).toEqual(Array(HOSTS).fill([2, 0, 0]));
    expect(readFileSync(path.join(tmp, `second-${HOSTS - 1}.txt`), 'utf8')).toBe(`second ${HOSTS - 1}\n`);
    expect(r.peakOpen).toBeLessThanOrEqual(FORKS);
    // Changing hosts were opened again for their tasks.
    expect(r.accepted).toBeGreaterThan(HOSTS);
  });

  it('a converged host is connected once: waiting closed costs it nothing', async () => {
    const r = await run(FORKS);
    expect(Object.values(r.res.hosts).every((o) => o.counts.changed === 0 && o.counts.failed === 0)).toBe(true);
    expect(r.peakOpen).toBeLessThanOrEqual(FORKS);
    expect(r.accepted).toBe(HOSTS);
  });

  it('without --forks the default bounds the hosts in flight (a fleet larger than it is never all connected at once)', () => {
    expect(DEFAULT_FORKS).toBeGreaterThan(0);
    expect(DEFAULT_FORKS).toBeLessThanOrEqual(500);
  });
});
