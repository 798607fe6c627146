#!/usr/bin/env node
/**
 * Mutation runner: each entry of mutations.json is one deliberate breakage of the source (a search
 * string replaced once). For each: apply it, run the unit tests, restore the file with
 * `git checkout -- FILE` (never git stash: the stash is shared by every worktree), and record
 * whether the tests caught it ("killed") or not ("survived").
 *
 *   node bench/mutations/run.mjs                 # every mutation, the whole unit project
 *   node bench/mutations/run.mjs ID...           # only these
 *   node bench/mutations/run.mjs --full          # the whole unit project for each (slow)
 *
 * By default each mutation runs the unit files listed in its "tests" (where the behaviour it breaks
 * is tested); a survivor there is then worth a --full run before calling it a survivor of the suite.
 *
 * Refuses to start when a file it would mutate has uncommitted changes (they would be lost).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const all = JSON.parse(readFileSync(path.join(import.meta.dirname, 'mutations.json'), 'utf8'));
const args = process.argv.slice(2);
const full = args.includes('--full');
const ids = args.filter((a) => !a.startsWith('--'));
const chosen = ids.length ? all.filter((m) => ids.includes(m.id)) : all;

const dirty = execFileSync('git', ['status', '--porcelain', '--', ...new Set(chosen.map((m) => m.file))], { cwd: root, encoding: 'utf8' }).trim();
if (dirty) {
  console.error(`uncommitted changes in files this would mutate (commit them first):\n${dirty}`);
  process.exit(4);
}

const results = [];
for (const m of chosen) {
  const file = path.join(root, m.file);
  const src = readFileSync(file, 'utf8');
  const n = src.split(m.find).length - 1;
  if (n !== 1) {
    results.push({ ...m, result: `stale (search string found ${n} times)` });
    console.log(`${m.id}: STALE (found ${n} times)`);
    continue;
  }
  writeFileSync(file, src.replace(m.find, () => m.replace));
  const started = Date.now();
  try {
    const r = spawnSync('npx', ['vitest', 'run', '--project', 'unit', '--bail', '1', ...(full ? [] : (m.tests ?? []))], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: '1' } });
    const failed = (r.stdout + r.stderr).match(/FAIL\s+.*?\S+\.test\.ts[^\n]*/g) ?? [];
    const result = r.status === 0 ? 'survived' : 'killed';
    results.push({ id: m.id, what: m.what, result, by: [...new Set(failed)].slice(0, 3), s: Math.round((Date.now() - started) / 1000) });
    console.log(`${m.id}: ${result.toUpperCase()} (${Math.round((Date.now() - started) / 1000)} s)${failed.length ? ' by ' + [...new Set(failed)][0] : ''}`);
  } finally {
    execFileSync('git', ['checkout', '--', m.file], { cwd: root });
  }
}
const killed = results.filter((r) => r.result === 'killed').length;
const survived = results.filter((r) => r.result === 'survived');
console.log(`\n${killed} killed, ${survived.length} survived, ${results.length - killed - survived.length} stale, of ${results.length}`);
for (const s of survived) console.log(`  survived: ${s.id}: ${s.what}`);
writeFileSync(path.join(root, 'bench/mutations/last-run.json'), JSON.stringify(results, null, 2) + '\n');
process.exit(survived.length ? 1 : 0);
