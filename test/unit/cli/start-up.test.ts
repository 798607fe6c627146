/**
 * What the CLI evaluates to start (README "Speed": start-up, #18): `--help` and `--version` evaluate
 * no engine module — no ssh2, yaml, zod, nunjucks, nor our inventory, playbook, executor or transport
 * code — only commander and the few modules that declare the commands. A module imported eagerly
 * by src/cli/main.ts (or by what it imports) fails this, whichever way bin/provision.cjs starts:
 * from the sources (tsx) or from the bundle (dist/provision.cjs, when it is current, as bin takes it).
 * test/unit/cli/module-probe.cjs records the modules; a command that loads the engine (`inventory`)
 * shows the probe sees them. No timing here: which modules, not how long.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../../..');
const bin = path.join(root, 'bin/provision.cjs');
const probe = path.join(import.meta.dirname, 'module-probe.cjs');
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-start-up-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The modules (paths relative to the repository) a fresh `node bin/provision.cjs ARGV` evaluated. */
function modulesEvaluated(argv: string[], env: NodeJS.ProcessEnv = {}): string[] {
  const out = path.join(tmp, `modules-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(out, '');
  const r = spawnSync(process.execPath, ['--require', probe, bin, ...argv], { cwd: root, encoding: 'utf8', env: { ...process.env, ...env, MODULE_PROBE_OUT: out } });
  expect(r.status, r.stderr).toBe(0);
  const lines = [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))].sort();
  collatorUses.set(argv.join(' ') + JSON.stringify(env), lines.filter((l) => l.startsWith('collator: ')));
  return lines.filter((l) => !l.startsWith('collator: '));
}
/** Each command's uses of ICU's collator (localeCompare, Intl.Collator), as the probe saw them. */
const collatorUses = new Map<string, string[]>();

/**
 * What `--help` may evaluate: commander, the modules that declare the commands and their options
 * (an option's help names the vault's password variable, from the vault's keyring: node built-ins
 * only), small utilities, and what starts the sources (tsx, esbuild). Anything else is a module
 * loaded before a command needs it.
 */
const ALLOWED_FOR_HELP = [
  /^bin\/(provision|bundle)\.cjs$/,
  /^package\.json$/,
  /^node_modules\/(commander|tsx|esbuild|get-tsconfig|resolve-pkg-maps)\//,
  /^src\/cli\/(main|commands|exit-codes|init|options|output|completion|help-topics)\.ts$/,
  /^src\/util\/(errors|version|paths|secrets|edit-distance|compare-text)\.ts$/,
  /^src\/executor\/forks\.ts$/,
  /^src\/inventory\/(prompt|vault\/keyring|vault\/decrypt)\.ts$/,
];
const notAllowed = (modules: string[]) => modules.filter((m) => !ALLOWED_FOR_HELP.some((re) => re.test(m)));

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return newest;
}
const bundle = path.join(root, 'dist/provision.cjs');
/** bin/provision.cjs's own rule: the bundle when it is newer than every source. */
const bundleCurrent = existsSync(bundle) && statSync(bundle).mtimeMs >= newestSource(path.join(root, 'src'));

const inventory = path.join(tmp, 'inventory.yml');
// Hosts in groups: the inventory puts each group's hosts and each host's groups in order.
writeFileSync(inventory, 'hosts:\n  web-02: {address: 192.0.2.11, groups: [web]}\n  web-01: {address: 192.0.2.10, groups: [web, db]}\n');

describe.each([
  { start: 'from the sources (tsx)', env: { PROVISION_NO_BUNDLE: '1' }, skip: false },
  { start: 'from the bundle', env: {}, skip: !bundleCurrent },
])('the CLI started $start', ({ env, skip }) => {
  it.skipIf(skip)('the probe sees the engine when a command loads it (inventory: yaml, zod, the inventory loader); no ICU collator is started', () => {
    const modules = modulesEvaluated(['inventory', '--inventory', inventory], env);
    expect(modules).toContain('src/inventory/loader.ts');
    expect(modules.some((m) => m.startsWith('node_modules/yaml/'))).toBe(true);
    expect(modules.some((m) => m.startsWith('node_modules/zod/'))).toBe(true);
    // The inventory's groups and hosts are put in order with compareText (src/util/compare-text.ts),
    // not localeCompare: ICU's collator is not started (tens of ms of start-up).
    expect(collatorUses.get(['inventory', '--inventory', inventory].join(' ') + JSON.stringify(env))).toEqual([]);
  });

  it.skipIf(skip)('--help evaluates no engine module (no ssh2, yaml, zod, nunjucks, inventory, executor, transport) and starts no ICU collator', () => {
    const modules = modulesEvaluated(['--help'], env);
    expect(modules).toContain('node_modules/commander/index.js');
    expect(notAllowed(modules)).toEqual([]);
    expect(collatorUses.get('--help' + JSON.stringify(env))).toEqual([]);
  });

  it.skipIf(skip)('--version and -V evaluate nothing of the CLI (bin/provision.cjs answers from package.json)', () => {
    for (const flag of ['--version', '-V']) expect(modulesEvaluated([flag], env).filter((m) => !/^(bin\/provision\.cjs|package\.json)$/.test(m))).toEqual([]);
  });
});
