/** `provision db`: bad input is exit 4 with one error line, before any host is contacted. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { captureOutput } from '../helpers/output.ts';

const { stderr } = captureOutput();

/** Two database hosts on a closed port: a connection attempt would make the command exit 3, not 4. */
function inventory(groups: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-db-input-'));
  const file = path.join(dir, 'inv.yml');
  writeFileSync(
    file,
    `defaults: { user: root, port: 1, connect_timeout: 2, known_hosts: /dev/null }
hosts:
  web-01: { address: 127.0.0.1, groups: [webservers, ${groups === 'none' ? 'webservers' : 'db_primary'}] }
  web-02: { address: 127.0.0.1, groups: [webservers${groups === 'none' ? '' : ', db_replica'}] }
  lb-01: { address: 127.0.0.1, groups: [loadbalancers] }
`,
  );
  return file;
}

async function errorOf(argv: string[]): Promise<{ code: number; lines: string[] }> {
  const code = await main(argv);
  return { code, lines: stderr.join('').split('\n').filter((l) => l !== '') };
}

describe('provision db: bad input', () => {
  it('switchover --to a host that is not a database host: exit 4, naming the database hosts', async () => {
    const r = await errorOf(['db', 'switchover', '-i', inventory('pair'), '--to', 'lb-01']);
    expect(r.code).toBe(4);
    expect(r.lines).toEqual(['provision: error: --to lb-01: not a database host of the inventory (db_primary, db_replica: web-01, web-02)']);
  });

  it('switchover without --to: exit 4', async () => {
    const r = await errorOf(['db', 'switchover', '-i', inventory('pair')]);
    expect(r.code).toBe(4);
    expect(r.lines[0]).toMatch(/required option '--to <host>' not specified/);
  });

  it('status of an inventory without database hosts: exit 4', async () => {
    const r = await errorOf(['db', 'status', '-i', inventory('none')]);
    expect(r.code).toBe(4);
    expect(r.lines[0]).toBe('provision: error: no database hosts: the inventory has no host in db_primary or db_replica');
  });

  it('the guard works: status of the pair on a closed port is unreachable (exit 3), not bad input', async () => {
    const r = await errorOf(['db', 'status', '-i', inventory('pair')]);
    expect(r.code).toBe(3);
  });
});
