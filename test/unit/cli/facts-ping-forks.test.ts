/**
 * `provision facts` and `provision ping` work on at most forks hosts at once, as a run does: each
 * host's connection is closed when it is done, so a fleet larger than forks is never all connected
 * at once (README "Speed", #18). Against the in-process SSH server of test/unit/helpers/sh-server.ts,
 * which counts the connections it has open at the same time; every inventory host is a name for it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { captureOutput } from '../helpers/output.js';
import { shServer, type ShServer } from '../helpers/sh-server.js';

const HOSTS = 12;
const FORKS = 3;

let server: ShServer;
let tmp: string;
let inventory: string;

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'provision-facts-forks-'));
  server = await shServer();
  const hosts = Array.from({ length: HOSTS }, (_, i) => `  h${i}: { address: 127.0.0.1, port: ${server.port}, known_hosts: ${tmp}/known_hosts-${i} }`);
  inventory = path.join(tmp, 'inv.yml');
  writeFileSync(inventory, `defaults: { user: root, become: false, accept_new_host_keys: true }\nhosts:\n${hosts.join('\n')}\n`);
});
afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const names = Array.from({ length: HOSTS }, (_, i) => `h${i}`).sort();

describe('provision facts and ping with more hosts than forks', () => {
  const out = captureOutput();

  it('facts: every host answers, with at most forks connections open at once', { timeout: 60_000 }, async () => {
    server.resetCounts();
    const code = await main(['facts', '-i', inventory, '--forks', String(FORKS)]);
    const facts = JSON.parse(out.stdout.join('')) as Record<string, { hostname?: string; unreachable?: string }>;
    expect(code).toBe(0);
    expect(Object.keys(facts).sort()).toEqual(names);
    expect(Object.values(facts).every((f) => typeof f.hostname === 'string' && f.unreachable === undefined)).toBe(true);
    expect(server.accepted).toBe(HOSTS);
    expect(server.peakOpen).toBeLessThanOrEqual(FORKS);
  });

  it('ping: every host pongs, with at most forks connections open at once', { timeout: 60_000 }, async () => {
    server.resetCounts();
    const code = await main(['ping', '-i', inventory, '--forks', String(FORKS), '--json']);
    const rows = JSON.parse(out.stdout.join('')) as { host: string; ok: boolean; user?: string }[];
    expect(code).toBe(0);
    expect(rows.map((r) => r.host).sort()).toEqual(names);
    expect(rows.every((r) => r.ok && r.user)).toBe(true);
    expect(server.accepted).toBe(HOSTS);
    expect(server.peakOpen).toBeLessThanOrEqual(FORKS);
  });
});
