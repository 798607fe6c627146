/**
 * A secret in an encoded form (what `| dump`, base64, URL encoding, shell quoting or hex make of it)
 * is masked in every output: plain text with --diff, --json, a plan file (through the plan writer),
 * and a CLI error message. The content flows as in a run: a real check-mode task on this machine
 * (LocalConnection), its events through the real renderers, its outcome through the plan writer.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { HostRun, type RunResult } from '../../../src/executor/index.js';
import { planFromRun, writePlan } from '../../../src/plan/plan.js';
import { JsonReporter, PlainReporter, TeeReporter } from '../../../src/report/renderers.js';
import { Secret, SECRET_MASK } from '../../../src/util/secrets.js';
import { LocalConnection } from '../executor/local-connection.js';
import { debianFacts, testHost } from '../modules/fixtures.js';

const SECRET = `Pa55\\w0rd"20'24`;
const secretBytes = Buffer.from(SECRET);
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-masking-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/bad/cli');

/** The secret as each encoder writes it, inside a longer text where that matters (base64 alignment). */
const ENCODINGS: Array<[string, string]> = [
  ['JSON (| dump)', JSON.stringify(SECRET)],
  ['base64, secret at byte offset 0', Buffer.concat([secretBytes, Buffer.from('!tail')]).toString('base64')],
  ['base64, secret at byte offset 1', Buffer.concat([Buffer.from('u'), secretBytes, Buffer.from('!')]).toString('base64')],
  ['base64, secret at byte offset 2', Buffer.concat([Buffer.from('u:'), secretBytes]).toString('base64')],
  ['URL encoding (| urlencode)', `mysql://app:${encodeURIComponent(SECRET)}@db/app`],
  ['form encoding', new URLSearchParams({ user: 'app', password: SECRET }).toString()],
  ['shell single quotes', `'${SECRET.replace(/'/g, `'\\''`)}'`],
  ['hex', secretBytes.toString('hex')],
];

/** The secret's bytes in any base64 run of the text, whatever the alignment. */
function decodesToSecret(text: string): boolean {
  for (const run of text.match(/[A-Za-z0-9+/_-]{12,}={0,2}/g) ?? []) {
    for (let skip = 0; skip < 4; skip++) {
      if (Buffer.from(run.slice(skip), 'base64').includes(secretBytes)) return true;
    }
  }
  return false;
}

function expectMasked(output: string, encoded: string, channel: string): void {
  expect(output, channel).toContain(SECRET_MASK); // the value did reach this output…
  expect(output, channel).not.toContain(encoded); // …masked
  expect(output, channel).not.toContain(SECRET);
  expect(decodesToSecret(output), channel).toBe(false);
}

describe.each(ENCODINGS)('%s', (_name, encoded) => {
  beforeEach(() => {
    new Secret('db_password', SECRET);
    vi.stubEnv('PROVISION_PLAN_KEY_FILE', path.join(tmp, 'plan.key'));
  });
  afterEach(() => vi.unstubAllEnvs());

  it('plain output with --diff, --json, and the plan file', async () => {
    const plain: string[] = [];
    const json: string[] = [];
    const reporter = new TeeReporter([new PlainReporter({ diff: true, verbose: 1, color: false }, (s) => plain.push(s)), new JsonReporter((s) => json.push(s))]);
    const run = new HostRun(testHost(), new LocalConnection(), debianFacts(), { check: true }, reporter);
    const dest = path.join(tmp, `app-${Math.random().toString(36).slice(2, 8)}.conf`);
    await run.runTask({ name: 'app config', module: 'copy', params: { dest, content: `user=app\nvalue=${encoded}\n` } }, []);
    expect(run.counts.changed).toBe(1);

    expectMasked(plain.join(''), encoded, 'plain --diff');
    expectMasked(json.join(''), encoded, '--json');
    const res: RunResult = { exitCode: 2, hosts: new Map([['web-01', run]]), wallMs: 0 };
    const planFile = path.join(tmp, 'plan.json');
    writePlan(planFile, planFromRun(res, { inventory: 'inv.yml', playbook: 'site.yml' }));
    expectMasked(readFileSync(planFile, 'utf8'), encoded, 'plan file');
  });

  it('a CLI error message', async () => {
    vi.stubEnv('PROVISION_SECRET_DB_PASSWORD', SECRET);
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (stderr.push(String(chunk)), true));
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const playbook = path.join(tmp, 'serial.yml');
    // The schema error quotes the bad value back: `[0].serial: expected a number, got string "…"`.
    writeFileSync(playbook, `- name: p\n  hosts: all\n  serial: ${JSON.stringify(encoded)}\n  tasks: []\n`);
    try {
      expect(await main(['-i', path.join(fixtures, 'secret.yml'), '-p', playbook])).toBe(4);
    } finally {
      vi.restoreAllMocks();
    }
    expect(stderr.join('')).toMatch(/\[0\]\.serial: expected a number, got string/);
    expectMasked(stderr.join(''), encoded, 'CLI error');
  });
});
