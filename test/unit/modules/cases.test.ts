/**
 * Every module case is a data file: test/unit/modules/cases/<module>/<case>.json (or .yaml).
 * This one runner turns each into a test: it asks the module for its probes, feeds it the recorded
 * probe results, facts and predicted state of the case, and compares the plan with the expectation.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import YAML from 'yaml';
import type { ProbeResult } from '../../../src/facts/index.js';
import { getModule, moduleNames, type Command, type ModuleContext, type Plan } from '../../../src/modules/index.js';
import { contentBytes, factsFrom, fileProbeResults, predictedFrom, testHost, type ContentJSON, type FileJSON, type PredictedJSON } from './fixtures.js';

const CASES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cases');

interface ChangeExpectation {
  kind?: string;
  target?: string;
  action?: string;
  before?: string;
  after?: string;
  sensitive?: boolean;
  /** The change carries no before/after (sensitive or too large). */
  noDiff?: boolean;
}

/**
 * A string is a substring of the command; an object can ask for an exact command, its stdin (text,
 * or any bytes as { "base64": "…" }), or, for a script run as `sh -c '…'`, substrings of the script
 * itself (unquoted), in order: each after the one before.
 */
type CommandExpectation = string | { cmd?: string; exact?: string; stdin?: ContentJSON; describe?: string; script?: string[] };

/** The script of `sh -c 'SCRIPT'` as util/quote.ts quoted it ('…' pieces joined by \'). */
function scriptOf(cmd: string): string {
  const quoted = cmd.startsWith('sh -c ') ? cmd.slice('sh -c '.length) : '';
  expect(quoted, `a script run as sh -c '…': ${cmd.slice(0, 40)}`).not.toBe('');
  if (!quoted.startsWith("'")) return quoted;
  return quoted
    .split("'\\''")
    .map((piece) => piece.replace(/^'|'$/g, ''))
    .join("'");
}

interface Case {
  description: string;
  params: Record<string, unknown>;
  facts?: Record<string, unknown>;
  host?: { vars?: Record<string, unknown>; address?: string };
  probes?: Record<string, { stdout: string; code?: number }>;
  /** Paths as the file probe reports them (shorthand for file:* probes). */
  files?: Record<string, FileJSON>;
  predicted?: PredictedJSON;
  check?: boolean;
  expected: {
    changes?: ChangeExpectation[] | number;
    commands?: CommandExpectation[];
    /** Substrings no command may contain. */
    notInCommands?: string[];
    error?: string;
    /** The params are refused by the schema; the message contains this. */
    schemaError?: string;
    note?: string;
    verify?: boolean;
    /** What the plan's predict() must record. */
    predicted?: PredictedJSON;
  };
}

function loadCases(): Array<{ module: string; file: string; dir: string; data: Case }> {
  const out: Array<{ module: string; file: string; dir: string; data: Case }> = [];
  for (const module of readdirSync(CASES_DIR).sort()) {
    const dir = path.join(CASES_DIR, module);
    for (const file of readdirSync(dir).sort()) {
      if (!/\.(json|ya?ml)$/.test(file)) continue;
      const text = readFileSync(path.join(dir, file), 'utf8');
      out.push({ module, file, dir, data: (file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text)) as Case });
    }
  }
  return out;
}

/** `src: ./files/x` in a case means a file beside the case. */
function resolveParams(params: Record<string, unknown>, dir: string): Record<string, unknown> {
  const out = { ...params };
  if (typeof out.src === 'string' && out.src.startsWith('./')) out.src = path.join(dir, out.src);
  return out;
}

function commandText(c: Command): string {
  return c.kind === 'shell' ? c.cmd : c.describe;
}

function checkCommands(commands: Command[], expected: CommandExpectation[]): void {
  expect(commands.map(commandText), 'number of commands').toHaveLength(expected.length);
  expected.forEach((e, i) => {
    const c = commands[i]!;
    const text = commandText(c);
    if (typeof e === 'string') {
      expect(text, `command ${i}`).toContain(e);
      return;
    }
    if (e.exact !== undefined) expect(text, `command ${i}`).toBe(e.exact);
    if (e.cmd !== undefined) expect(text, `command ${i}`).toContain(e.cmd);
    if (e.describe !== undefined) expect(c.kind === 'shell' ? c.describe : c.describe, `command ${i} describe`).toContain(e.describe);
    if (e.stdin !== undefined) {
      const stdin = c.kind === 'shell' && c.stdin !== undefined ? Buffer.from(c.stdin) : Buffer.alloc(0);
      // Compared as bytes; shown as text when it is text, so a failure reads well.
      if (typeof e.stdin === 'string') expect(stdin.toString('utf8'), `command ${i} stdin`).toBe(e.stdin);
      expect(stdin.equals(contentBytes(e.stdin)), `command ${i} stdin bytes`).toBe(true);
    }
    if (e.script !== undefined) {
      const script = scriptOf(text);
      let from = 0;
      for (const part of e.script) {
        const at = script.indexOf(part, from);
        expect(at, `command ${i}: script has "${part}" after position ${from}:\n${script}`).toBeGreaterThanOrEqual(0);
        from = at + part.length;
      }
    }
  });
}

function checkPredicted(plan: Plan, ctx: ModuleContext, want: PredictedJSON): void {
  const state = ctx.predicted;
  plan.predict?.(state);
  for (const n of want.packagesInstalled ?? []) expect(state.packagesInstalled.has(n), `predicted package ${n}`).toBe(true);
  for (const n of want.packagesRemoved ?? []) expect(state.packagesRemoved.has(n), `predicted removed ${n}`).toBe(true);
  for (const n of want.users ?? []) expect(state.users.has(n), `predicted user ${n}`).toBe(true);
  for (const n of want.groups ?? []) expect(state.groups.has(n), `predicted group ${n}`).toBe(true);
  for (const n of want.directories ?? []) expect(state.directories.has(n), `predicted directory ${n}`).toBe(true);
  for (const [k, v] of Object.entries(want.files ?? {})) {
    const got = state.files.get(k);
    if (v === null) expect(got, `predicted file ${k}`).toBeNull();
    else expect(got && Buffer.from(got).equals(contentBytes(v)), `predicted file ${k} (${got?.toString('base64')})`).toBe(true);
  }
  for (const [k, v] of Object.entries(want.services ?? {})) expect(state.services.get(k), `predicted service ${k}`).toBe(v);
}

const cases = loadCases();

describe('module cases', () => {
  test('there are cases for every registered module', () => {
    const covered = new Set(cases.map((c) => c.module));
    expect(moduleNames().filter((m) => !covered.has(m))).toEqual([]);
  });

  for (const { module, file, dir, data } of cases) {
    test(`${module}/${file}: ${data.description}`, async () => {
      const def = getModule(module);
      expect(def, `module ${module} is registered`).toBeDefined();
      const parsed = def!.schema.safeParse(resolveParams(data.params, dir));
      if (data.expected.schemaError !== undefined) {
        expect(parsed.success).toBe(false);
        expect(parsed.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')).toContain(data.expected.schemaError);
        return;
      }
      if (!parsed.success) throw new Error(`params refused: ${parsed.error.message}`);

      const host = testHost(data.host?.vars);
      if (data.host?.address) host.address = data.host.address;
      const facts = factsFrom(data.facts);
      const requested = new Set(def!.probes(parsed.data, host, facts).map((p) => p.key));
      const results = new Map<string, ProbeResult>();
      for (const [key, r] of Object.entries(data.probes ?? {})) {
        expect(requested, `the module asks for probe "${key}"`).toContain(key);
        results.set(key, { stdout: r.stdout, code: r.code ?? 0 });
      }
      for (const [p, f] of Object.entries(data.files ?? {})) {
        const pair = fileProbeResults(p, f);
        expect(pair.some(([k]) => requested.has(k)), `the module probes ${p}`).toBe(true);
        for (const [k, v] of pair) results.set(k, v);
      }
      const ctx: ModuleContext = {
        host,
        facts,
        check: data.check ?? false,
        predicted: predictedFrom(data.predicted),
        results,
        run: async (cmd) => {
          throw new Error(`plan() must not run commands (ran: ${cmd})`);
        },
      };

      if (data.expected.error !== undefined) {
        await expect(async () => def!.plan(parsed.data, ctx)).rejects.toThrow(data.expected.error);
        return;
      }
      const plan = await def!.plan(parsed.data, ctx);
      const want = data.expected;
      if (typeof want.changes === 'number') expect(plan.changes).toHaveLength(want.changes);
      else if (want.changes) {
        expect(plan.changes.map((c) => `${c.kind} ${c.target}: ${c.action}`), 'changes').toHaveLength(want.changes.length);
        want.changes.forEach((w, i) => {
          const got = plan.changes[i]!;
          const { noDiff, ...fields } = w;
          expect(got, `change ${i}`).toMatchObject(fields);
          if (noDiff) {
            expect(got.before, `change ${i} has no before`).toBeUndefined();
            expect(got.after, `change ${i} has no after`).toBeUndefined();
          }
        });
      }
      if (plan.changes.length === 0) expect(plan.commands, 'no change means no commands').toEqual([]);
      if (want.commands) checkCommands(plan.commands, want.commands);
      for (const s of want.notInCommands ?? []) {
        for (const c of plan.commands) expect(commandText(c)).not.toContain(s);
      }
      if (want.note !== undefined) expect(plan.note ?? '').toContain(want.note);
      if (want.verify !== undefined) expect(plan.verify !== undefined, 'plan has a verify step').toBe(want.verify);
      if (want.predicted) checkPredicted(plan, ctx, want.predicted);
    });
  }
});
