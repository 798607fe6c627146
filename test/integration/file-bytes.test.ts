/**
 * Files are bytes from end to end (issue 12, item 8), on a real lab host: a binary file holding
 * every byte value and a Latin-1 text file arrive byte for byte (sha256 on the host), lineinfile in
 * a Latin-1 file changes its one line and leaves every other byte, and a second run changes nothing.
 * A copy that an older provision corrupted (invalid UTF-8 replaced by ef bf bd) is seen as a change.
 *
 *     npx vitest run --project lab test/integration/file-bytes.test.ts
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { changedTasks, provision } from '../e2e/lab-env.ts';
import { failures, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'fil';
const PREFIX = '10.92.0';
const HOST = 'web-01';
let dir: string;
let inventory: string;

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const LATIN1 = Buffer.from('Grüße aus Köln\nÄrger: ja\n', 'latin1');
const CONFIG_BEFORE = Buffer.from('# Größe: groß\nkey=old\nname=Müller\n', 'latin1');
const CONFIG_AFTER = Buffer.from('# Größe: groß\nkey=new\nname=Müller\n', 'latin1');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function hostSha(file: string): Promise<string> {
  const r = await hostExec(HOST, ['sha256sum', file], NAME);
  if (r.code !== 0) throw new Error(`sha256sum ${file}: ${r.stderr}`);
  return r.stdout.split(' ')[0]!;
}

const run = (play: string) => provision(['-i', inventory, '-p', writePlaybook(dir, play), '--limit', HOST, '--json', '--diff'], { timeoutMs: 240_000 });

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-fil-bytes-'));
  writeFileSync(path.join(dir, 'all-bytes.bin'), ALL_BYTES);
  writeFileSync(path.join(dir, 'latin1.txt'), LATIN1);
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: [HOST], pebble: false });
  inventory = writeInventory(dir, NAME, PREFIX);
});

afterAll(async () => {
  await labDown(NAME);
});

describe('binary and Latin-1 files', () => {
  it('arrive byte for byte, lineinfile changes only its line, and a second run changes nothing', async () => {
    // The config file is on the host first, as a package would have laid it down.
    const seed = await hostExec(HOST, ['sh', '-c', `printf '%s' '${CONFIG_BEFORE.toString('base64')}' | base64 -d > /etc/fil-latin1.conf`], NAME);
    expect(seed.code).toBe(0);
    const play = `
- name: bytes
  hosts: all
  tasks:
    - name: binary file
      copy: { src: ${path.join(dir, 'all-bytes.bin')}, dest: /usr/local/share/fil-all-bytes.bin }
    - name: Latin-1 file
      copy: { src: ${path.join(dir, 'latin1.txt')}, dest: /etc/fil-latin1.txt }
    - name: one line of a Latin-1 config
      lineinfile: { path: /etc/fil-latin1.conf, regexp: "^key=", line: "key=new" }
`;
    const first = await run(play);
    expect(failures(first)).toEqual([]);
    expect(first.code).toBe(2);
    expect(await hostSha('/usr/local/share/fil-all-bytes.bin')).toBe(sha256(ALL_BYTES));
    expect(await hostSha('/etc/fil-latin1.txt')).toBe(sha256(LATIN1));
    expect(await hostSha('/etc/fil-latin1.conf')).toBe(sha256(CONFIG_AFTER));
    // No diff of bytes that are not text: the change says so instead.
    const binary = first.events.find((e) => e.kind === 'task-result' && e.task === 'binary file') as { changes: Array<{ action: string; before?: string }> };
    expect(binary.changes[0]).toMatchObject({ action: 'create (binary content changed)' });
    expect(binary.changes[0]!.before).toBeUndefined();

    const second = await run(play);
    expect(changedTasks(second)).toEqual([]);
    expect(second.code).toBe(0);
  });

  it('a copy whose invalid UTF-8 was replaced on the host (ff fe → ef bf bd) is a change, and is repaired', async () => {
    const corrupted = Buffer.from(ALL_BYTES.toString('utf8'), 'utf8');
    const seed = await hostExec(HOST, ['sh', '-c', `printf '%s' '${corrupted.toString('base64')}' | base64 -d > /usr/local/share/fil-all-bytes.bin`], NAME);
    expect(seed.code).toBe(0);
    const r = await run(`
- name: bytes
  hosts: all
  tasks:
    - name: binary file
      copy: { src: ${path.join(dir, 'all-bytes.bin')}, dest: /usr/local/share/fil-all-bytes.bin }
`);
    expect(r.code).toBe(2);
    expect(await hostSha('/usr/local/share/fil-all-bytes.bin')).toBe(sha256(ALL_BYTES));
  });
});
