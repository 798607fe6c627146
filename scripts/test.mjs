#!/usr/bin/env node
// The whole test suite, as CI runs it: typecheck, unit tests, then the tests on real hosts
// (the lab), with the lab brought down at the end whatever happened. Needs root on Linux.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
process.chdir(root);
const node = process.execPath;
const bin = path.join(root, 'bin/provision.cjs');
const vitest = path.join(root, 'node_modules/vitest/vitest.mjs');
const started = Date.now();
/** The split-topology e2e pass's lab instance: a subnet no lab test and no other instance of the suite uses. */
const SPLIT_INSTANCE = 'e2split';
const SPLIT_SUBNET = '10.76.0.0/24';
const results = [];
/** Each vitest step writes a JSON report here, so that the summary can name the tests that failed:
 *  CI shows only the end of the output, and a step's FAIL line alone says nothing of which test. */
const reports = mkdtempSync(path.join(tmpdir(), 'provision-test-report-'));
let reportCount = 0;

/** vitest's arguments for a step: its own reporter as usual, and a JSON report into `file`. */
function vitestArgs(project, file) {
  return [vitest, 'run', '--project', project, '--reporter=default', '--reporter=json', `--outputFile.json=${file}`];
}

/** A vitest step's arguments and options: the JSON report's file goes with the step's result. */
function vitestStep(project) {
  const report = path.join(reports, `${++reportCount}-${project}.json`);
  return [vitestArgs(project, report), { report }];
}

/** "file > suite > test" for each test that failed in a vitest JSON report (a file that failed to load counts too). */
function failedTests(file) {
  if (!file || !existsSync(file)) return [];
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  const out = [];
  for (const f of report.testResults ?? []) {
    const rel = path.relative(root, f.name ?? '');
    const failed = (f.assertionResults ?? []).filter((a) => a.status === 'failed');
    for (const a of failed) out.push(`${rel} > ${[...(a.ancestorTitles ?? []), a.title].join(' > ')}`);
    if (!failed.length && f.status === 'failed') out.push(`${rel} (${(f.message ?? 'failed').split('\n')[0].slice(0, 160)})`);
  }
  return out;
}

function step(name, cmd, args, opts = {}) {
  const t0 = Date.now();
  process.stdout.write(`\n=== ${name}\n`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...opts.env } });
  const ok = r.status === 0;
  results.push({ name, ok, seconds: (Date.now() - t0) / 1000, code: r.status, report: opts.report });
  return ok;
}

if (!existsSync(vitest)) {
  console.error('provision tests: node_modules is missing; run: npm ci && npm test');
  process.exit(1);
}
const onLinuxAsRoot = process.platform === 'linux' && process.getuid?.() === 0;

// Tools the tests use from outside the hosts (the lab installs its own dependencies).
if (onLinuxAsRoot) {
  const need = { curl: 'curl', nmap: 'nmap', openssl: 'openssl', ssh: 'openssh-client', testssl: 'testssl.sh', ruby: 'ruby' };
  const missing = Object.entries(need).filter(([bin]) => spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0).map(([, pkg]) => pkg);
  if (missing.length) {
    spawnSync('apt-get', ['update', '-q'], { stdio: 'inherit' });
    step(`apt-get install ${missing.join(' ')}`, 'apt-get', ['install', '-y', '-q', ...missing], { env: { DEBIAN_FRONTEND: 'noninteractive' } });
  }
}

step('typecheck', node, [path.join(root, 'node_modules/typescript/bin/tsc'), '--noEmit']);
step('unit tests', node, ...vitestStep('unit'));

if (!onLinuxAsRoot) {
  // The suite promises the lab and end-to-end parts: one it cannot run is a failure, said plainly,
  // never a green summary (CI runs as root, so this costs nothing there).
  console.error('provision tests: the lab and end-to-end tests need root on Linux: NOT RUN, the suite fails (run as root, or run the unit project alone: npx vitest run --project unit)');
  results.push({ name: 'lab and end-to-end tests (not run: need root on Linux)', ok: false, seconds: 0, code: null });
} else {
  const labRoot = '/var/lib/provision-lab';
  const instances = () => (existsSync(labRoot) ? readdirSync(labRoot).filter((n) => existsSync(path.join(labRoot, n, 'state.json'))) : []);
  try {
    // Fresh hosts: every lab instance left from an earlier run is taken down first.
    for (const name of instances()) step(`lab down --name ${name} (stale)`, node, [bin, 'lab', 'down', '--name', name]);
    if (step('lab up', node, [bin, 'lab', 'up'])) {
      step('lab and integration tests', node, ...vitestStep('lab'));
      step('end-to-end tests (the whole site)', node, ...vitestStep('e2e'));
    }
    // The same end-to-end files again on the split topology (inventory/prod-split.yml: the databases on
    // hosts of their own), on an instance and subnet of its own, after the others are down: the 2 cores
    // run one site at a time (test/e2e/topology.ts). ~25 minutes; PROVISION_TEST_SPLIT=0 leaves it out
    // (a quicker local run; CI runs it).
    if (process.env.PROVISION_TEST_SPLIT !== '0') {
      for (const name of instances()) step(`lab down --name ${name}`, node, [bin, 'lab', 'down', '--name', name]);
      const [args, opts] = vitestStep('e2e');
      step('end-to-end tests (split topology)', node, args, {
        ...opts,
        env: { PROVISION_E2E_INSTANCE: SPLIT_INSTANCE, PROVISION_E2E_SUBNET: SPLIT_SUBNET, PROVISION_E2E_TOPOLOGY: 'split' },
      });
    }
  } finally {
    // Whatever a test started, stop it: every lab instance with a state file goes down.
    for (const name of instances()) step(`lab down --name ${name}`, node, [bin, 'lab', 'down', '--name', name]);
  }
}

process.stdout.write('\n=== summary\n');
for (const r of results) {
  process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'}  ${r.name} (${r.seconds.toFixed(0)} s)\n`);
  if (r.ok) continue;
  const failed = failedTests(r.report);
  for (const t of failed.slice(0, 25)) process.stdout.write(`        failed: ${t}\n`);
  if (failed.length > 25) process.stdout.write(`        … and ${failed.length - 25} more\n`);
}
rmSync(reports, { recursive: true, force: true });
process.stdout.write(`total ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
