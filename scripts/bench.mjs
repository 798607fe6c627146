#!/usr/bin/env node
// npm run bench [-- options]   (root, like the lab)
//
// The speed benchmark, on lab instances of its own: "bench" (the four site hosts, 10.85.0.0/24) and
// "scale" (cheap scale hosts, 10.98.0.0/24 and more /24s beyond 200 hosts). Parts, in this order
// (--only a,b runs some of them; --skip-NAME leaves one out):
//   idiomatic         the idiomatic Ansible playbook (bench/ansible-idiomatic) against ours: each converges
//                     fresh hosts, each side's no-change run on the other's result changes nothing, and the
//                     two results are compared (packages, files modulo comments, links, units, ufw, MySQL)
//   converge          our converge of the site from fresh hosts
//   nochange          our no-change run of the site, and the floor (bench/floor.mjs), interleaved
//   ansible-nochange  the idiomatic playbook's no-change run, fact cache off and on
//   ansible           the generated per-item translation's no-change run (bench/ansible)
//   ansible-converge  ours and the translation converging bench/scale.yml from fresh hosts
//   latency           ours and the idiomatic playbook at each --rtt (through bench/relay.mjs), per task
//   startup           --version, a no-op run, npx provision: process start to first SSH connect
//   scale             bench/scale-hosts.yml on 100, 200, 500 cheap hosts: controller CPU and memory per
//                     host, against the floor
// Every figure is a fresh process measured from start to end; median (min–max) of N runs. Prints a
// table and writes bench/results.json (--merge keeps the figures of parts not run). The instances
// are brought down at the end unless --keep.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { cli, cliOf, load, log, measure, npxProject, ourNoChange, removeTmp, root, round, runFigures, sh, stats, summarise, tmp } from '../bench/lib.mjs';
import { withLatency, cleanupStale } from '../bench/latency.mjs';
import {
  collectState, compareStates, ensureDir, runIdiomatic, secretValuesOf, siteManaged, writeIdiomaticInventory,
} from '../bench/idiomatic.mjs';

// --name and --subnet (its first three octets, e.g. 10.122.0): another instance for the site hosts, so
// the benchmark can run beside other labs on the same machine.
const argvAt = (name, dflt) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : dflt);
const NAME = argvAt('name', 'bench');
const SUBNET = argvAt('subnet', '10.85.0').replace(/\.0\/24$/, '');
if (!/^\d+\.\d+\.\d+$/.test(SUBNET)) throw new Error(`--subnet: "${SUBNET}" is not the first three octets of a /24 (e.g. 10.122.0)`);
const LAB_DIR = `/var/lib/provision-lab/${NAME}`;
const SITE = { 'lb-01': `${SUBNET}.10`, 'web-01': `${SUBNET}.11`, 'web-02': `${SUBNET}.12`, 'mon-01': `${SUBNET}.20` };
const SITE_HOSTS = Object.keys(SITE);
const SECRETS = path.join(root, 'inventory/bench.secrets.yml');
const RELAY_STATE = path.join(LAB_DIR, 'relay-rules.json');

// ------------------------------------------------------------------------------------------- options
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);
const list = (s) => String(s).split(',').map((x) => x.trim()).filter(Boolean);
const RUNS = Number(opt('runs', process.env.BENCH_RUNS ?? 5));
const CONVERGE_RUNS = Number(opt('converge-runs', 1));
const ANSIBLE_RUNS = Number(opt('ansible-runs', 3));
const RTTS = list(opt('rtt', '0,25,50,100')).map(Number);
const RTT_RUNS = Number(opt('rtt-runs', RUNS));
const RTT_ANSIBLE_RUNS = Number(opt('rtt-ansible-runs', 1));
const STARTUP_RUNS = Number(opt('startup-runs', 10));
const STARTUP_BASELINE = opt('startup-baseline', '');
const SCALE = list(opt('scale', '100,200,500')).map(Number).filter(Boolean);
// The scale part's lab instance and its /24s (200 cheap hosts each): another name and subnets let it
// run beside other labs on the same machine.
const SCALE_NAME = opt('scale-name', 'scale');
const SCALE_SUBNETS = list(opt('scale-subnets', '10.98.0.0/24,10.99.0.0/24,10.100.0.0/24,10.101.0.0/24'));
const SCALE_LAB_DIR = `/var/lib/provision-lab/${SCALE_NAME}`;
// --forks N: hosts worked on at once, given to our runs and to the floor alike (default: ours).
const FORKS = opt('forks', '') ? Number(opt('forks', '')) : undefined;
const forksArgs = FORKS ? ['--forks', String(FORKS)] : [];
// --scale-also-forks N: in the scale part, also our no-change run with --forks N, interleaved (the
// before/after of a forks default: e.g. N = the size, every host connected at once).
const ALSO_FORKS = opt('scale-also-forks', '') ? Number(opt('scale-also-forks', '')) : undefined;
const CONVERGE_HOSTS = list(opt('converge-hosts', ''));
// --reuse-built: the interleaved no-change rounds of ansible-nochange on the snapshots "idiomatic-built"
// and "ours-built" an earlier idiomatic part (or the same steps by hand) left on this instance.
const REUSE_BUILT = flag('reuse-built');
const ONLY = list(opt('only', ''));
const PARTS = ['idiomatic', 'converge', 'nochange', 'ansible-nochange', 'ansible', 'ansible-converge', 'latency', 'startup', 'scale'];
for (const p of ONLY) if (!PARTS.includes(p)) throw new Error(`--only: unknown part "${p}" (parts: ${PARTS.join(', ')})`);
// --skip-converge and --skip-ansible keep their old meaning (all converges; every Ansible part).
const part = (name) => {
  if (ONLY.length) return ONLY.includes(name);
  if (flag(`skip-${name}`)) return false;
  if (flag('skip-converge') && ['idiomatic', 'converge', 'ansible-converge'].includes(name)) return false;
  if (flag('skip-ansible') && ['idiomatic', 'ansible-nochange', 'ansible', 'ansible-converge', 'latency'].includes(name)) return false;
  if (flag('skip-no-change') && name === 'nochange') return false;
  return true;
};
const needsSite = PARTS.filter((p) => p !== 'scale').some(part);

// ------------------------------------------------------------------------------------------- results
const previous = flag('merge') && existsSync(path.join(root, 'bench/results.json')) ? JSON.parse(readFileSync(path.join(root, 'bench/results.json'), 'utf8')) : {};
const results = {
  ...previous,
  earlier: previous.command ? [...(previous.earlier ?? []), { command: previous.command, when: previous.when, machine: previous.machine }] : undefined,
  machine: {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model,
    memoryGB: round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    node: process.version,
    os: readFileSync('/etc/os-release', 'utf8').match(/^PRETTY_NAME="?([^"\n]*)/m)?.[1],
    loadAtStart: load(),
  },
  when: new Date().toISOString(),
  command: `npm run bench -- ${args.join(' ')}`.trim(),
  runs: RUNS,
};
/** Written after every part, so a run cut short still leaves what it measured. */
const save = () => writeFileSync(path.join(root, 'bench/results.json'), JSON.stringify(results, null, 2) + '\n');
const figure = (runs) => ({ wallS: stats(runs.map((r) => r.wallMs / 1000)), cpuS: stats(runs.map((r) => r.cpuS)), rssMB: stats(runs.map((r) => r.rssMB)) });

// ------------------------------------------------------------------------------------------- lab and inventories
/** The lab's secrets for this instance: made once at random, mode 0600, never committed. */
function ensureSecrets() {
  const names = ['mysql_replication_password', 'mysql_app_password', 'mysql_exporter_password'];
  const have = existsSync(SECRETS) ? readFileSync(SECRETS, 'utf8') : '';
  const missing = names.filter((n) => !new RegExp(`^${n}:`, 'm').test(have));
  if (missing.length) writeFileSync(SECRETS, have + missing.map((n) => `${n}: "${randomBytes(18).toString('base64url')}"\n`).join(''), { mode: 0o600 });
  chmodSync(SECRETS, 0o600);
}

function writeSiteInventory() {
  const site = readFileSync(path.join(root, 'inventory/lab.yml'), 'utf8')
    .replace(/10\.77\.0\./g, `${SUBNET}.`)
    .replace(/\/provision-lab\/default\//g, `/provision-lab/${NAME}/`)
    .replace(/^secrets_file: .*$/m, 'secrets_file: bench.secrets.yml')
    // The bench times our engine and Ansible on the same work, not an AIDE baseline (minutes of
    // hashing per host), chkrootkit or the day's security updates (network-bound, not the tools').
    .replace(/^vars:\n/m, 'vars:\n  aide: false\n  rootkit_check: false\n  security_updates_on_converge: false\n');
  if (!/^  aide: false$/m.test(site)) throw new Error('inventory/lab.yml has no top-level vars: for the bench inventory');
  writeFileSync(path.join(root, 'inventory/bench.yml'), site);
  // A play without tasks: connect, gather facts, nothing else (the start-up figure's "no-op run").
  writeFileSync(path.join(tmp(), 'noop.yml'), '- name: nothing to do\n  hosts: all\n  tasks: []\n');
}

/** Instances this run brought up: the only ones it takes down at the end. */
const broughtUp = new Set();
function labUp(name, argv) {
  log(`lab up --name ${name} ${argv.join(' ')}`);
  broughtUp.add(name);
  // A boot can fail under heavy load; up is idempotent, so try again.
  for (let i = 0; ; i++) {
    const r = cli(['lab', 'up', '--name', name, ...argv], { allowFail: true });
    if (r.status === 0) return r.stdout;
    if (i === 2) throw new Error(`lab up failed: ${r.stderr}`);
    log(`lab up failed (${r.stderr.trim().split('\n').pop()}), again`);
    const stuck = /provision lab: (\S+) \(\S+\) not reachable over SSH/.exec(r.stderr)?.[1];
    if (stuck) for (const c of ['stop-host', 'start-host']) cli(['lab', c, stuck, '--name', name], { allowFail: true });
  }
}

const snapshotExists = (host, snap) => existsSync(path.join(LAB_DIR, 'snapshots', snap, host));
const restoreFresh = () => restoreSite('fresh');
const restoreSite = (snap) => {
  for (const h of SITE_HOSTS) cli(['lab', 'restore', h, snap, '--name', NAME]);
};
const snapshotSite = (snap) => {
  for (const h of SITE_HOSTS) cli(['lab', 'snapshot', h, snap, '--name', NAME]); // one at a time: the lab state file is shared
};
/** What each side built in the idiomatic part of this run (snapshots): the interleaved no-change runs restore them. */
const BUILT = { theirs: 'idiomatic-built', ours: 'ours-built' };
let builtThisRun = false;

/** The floor's config (bench/floor.mjs): these hosts, each answering our batched fact script. */
let factScript;
function floorConfig(name, hosts, labDir) {
  if (!factScript) {
    factScript = path.join(tmp(), 'facts.sh');
    writeFileSync(factScript, sh('npx', ['tsx', 'bench/fact-script.ts']).stdout);
  }
  const file = path.join(tmp(), `floor-${name}.json`);
  writeFileSync(file, JSON.stringify({
    hosts: hosts.map((h) => ({ ...h, port: 22 })),
    user: 'root', key: `${labDir}/ssh/id_ed25519`, knownHosts: `${labDir}/ssh/known_hosts`, script: factScript,
    // The same parallelism as our run: --forks, else our default (DEFAULT_FORKS in src/executor/run.ts).
    forks: FORKS ?? Math.min(hosts.length, 200),
  }));
  return file;
}
const floorRun = async (cfg) => {
  const f = await measure(process.execPath, [path.join(root, 'bench/floor.mjs'), cfg]);
  if (f.code !== 0) throw new Error(`floor failed: ${f.stderr}`);
  return f;
};

/** CPU time the whole machine spent (all cores, every process), in s. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
function machineBusyS() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK;
}

async function ourConverge(playbook = 'playbooks/site.yml', limit = []) {
  const r = await measure(process.execPath, [cliOf(root), '--inventory', 'bench', '--playbook', playbook, '--json', ...(limit.length ? ['--limit', limit.join(',')] : [])]);
  const recap = runFigures(r).recap;
  if (r.code !== 2) throw new Error(`our converge of ${playbook} exited ${r.code}: ${JSON.stringify(recap.hosts)}`);
  return r;
}

/** Back to our converged site: a run that changes nothing is the precondition of the no-change figures. */
function settle() {
  for (let i = 0; i < 3; i++) if (cli(['--inventory', 'bench', '--json'], { allowFail: true }).status === 0) return;
  throw new Error('the site does not converge to no-change');
}

// ------------------------------------------------------------------------------------------- Ansible
let ansibleReady;
function ensureAnsible() {
  if (ansibleReady) return ansibleReady;
  const have = spawnSync('ansible-galaxy', ['collection', 'list', 'community.mysql'], { encoding: 'utf8' });
  if (have.status !== 0 || !/community\.mysql/.test(have.stdout)) {
    log('installing Ansible (Debian packages ansible-core and ansible: community.general, community.mysql, ansible.posix)');
    sh('apt-get', ['install', '-y', '-q', 'ansible-core', 'ansible'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  ansibleReady = {
    version: sh('ansible-playbook', ['--version']).stdout.split('\n')[0],
    hosts: writeIdiomaticInventory(path.join(tmp(), 'idiomatic-hosts.yml'), { subnet: SUBNET, labDir: LAB_DIR }),
  };
  return ansibleReady;
}
const idiomatic = (opts = {}) => runIdiomatic({ hosts: ensureAnsible().hosts, secrets: SECRETS, ...opts });

let idiomaticSettled = false;
async function idiomaticNoChange(runs, factCache) {
  if (!idiomaticSettled) {
    // Once, unmeasured, on hosts we converged: Ansible installs what it needs itself (PyMySQL for
    // community.mysql); every file is already as its templates render it (the same bytes as ours).
    const first = await idiomatic();
    if (!first.ok) throw new Error(`the idiomatic playbook failed on the converged site: ${first.failures.join('; ')}`);
    const other = Object.entries(first.changedTasks).flatMap(([h, ts]) => ts.filter((t) => !/PyMySQL/.test(t)).map((t) => `${h}: ${t}`));
    if (other.length) throw new Error(`the idiomatic playbook changed more than PyMySQL on the site we converged: ${other.join('; ')}`);
    idiomaticSettled = true;
  }
  const out = [];
  for (let i = 0; i < runs; i++) {
    const r = await idiomatic({ factCache });
    if (!r.ok || Object.values(r.changed).some((c) => c !== 0)) {
      throw new Error(`the idiomatic playbook's no-change run changed or failed: ${JSON.stringify(r.changedTasks)} ${r.failures.join('; ')}`);
    }
    out.push(r);
  }
  return out;
}

/** Median duration of every task over runs (ms), in playbook order. */
function perTask(runs) {
  const names = runs[0]?.tasks.map((t) => `${t.play} / ${t.task}`) ?? [];
  return names.map((n, i) => ({ task: n, ms: stats(runs.map((r) => r.tasks[i]?.ms)).median }));
}

// The generated per-item translation (bench/ansible): our expanded task list as Ansible tasks.
let generatedReady;
function prepareGenerated(playbook = 'playbooks/site.yml') {
  ensureAnsible();
  generatedReady ??= {
    hosts: (() => {
      const f = path.join(tmp(), 'generated-hosts.yml');
      writeFileSync(f, [
        'all:', '  vars:', '    ansible_user: root', `    ansible_ssh_private_key_file: ${LAB_DIR}/ssh/id_ed25519`,
        `    ansible_ssh_common_args: -o UserKnownHostsFile=${LAB_DIR}/ssh/known_hosts -o StrictHostKeyChecking=yes`, '  hosts:',
        ...SITE_HOSTS.map((h) => `    ${h}: {ansible_host: ${SITE[h]}}`), '',
      ].join('\n'));
      return f;
    })(),
    secrets: path.join(tmp(), 'generated-secrets.yml'),
  };
  log(`generating the per-item Ansible tasks from our expanded ${playbook}`);
  const tasks = JSON.parse(sh('npx', ['tsx', 'bench/ansible/generate.ts', 'bench', playbook, 'bench/ansible', generatedReady.secrets]).stdout);
  return { ...generatedReady, tasks };
}
let generatedRunNo = 0;
async function generatedRun(a, converge = false, limit = []) {
  const env = { ANSIBLE_CONFIG: path.join(root, 'bench/ansible/ansible.cfg'), ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(tmp(), `cp-gen-${++generatedRunNo}`), ANSIBLE_NOCOLOR: '1' };
  const r = await measure('ansible-playbook', ['-i', a.hosts, '-e', `@${a.secrets}`, ...(limit.length ? ['--limit', limit.join(',')] : []), 'site.yml'], { cwd: path.join(root, 'bench/ansible'), env });
  const recap = [...r.stdout.matchAll(/^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)];
  if (r.code !== 0 || recap.length !== (limit.length || SITE_HOSTS.length) || (!converge && recap.some((m) => m[3] !== '0'))) {
    throw new Error(`the generated Ansible playbook's ${converge ? 'converge' : 'no-change run'} did not succeed (exit ${r.code}):\n${r.stdout.slice(-2000)}`);
  }
  return { ...r, tasks: Object.fromEntries(recap.map((m) => [m[1], Number(m[2])])), changed: Object.fromEntries(recap.map((m) => [m[1], Number(m[3])])) };
}

// ------------------------------------------------------------------------------------------- the parts
async function partIdiomatic() {
  const a = ensureAnsible();
  const managed = siteManaged('bench');
  const secretValues = secretValuesOf(SECRETS);
  // 1. Ansible converges fresh hosts; its own second run must change nothing; what it built is kept.
  log('idiomatic: restoring fresh hosts; the idiomatic Ansible playbook converges them');
  restoreFresh();
  const theirConverge = await idiomatic();
  if (!theirConverge.ok) throw new Error(`the idiomatic playbook did not converge fresh hosts (exit ${theirConverge.code}): ${theirConverge.failures.join('; ')}`);
  log(`idiomatic converge: ${(theirConverge.wallMs / 1000).toFixed(1)} s; its no-change run on what it built`);
  const theirSecond = await idiomatic();
  const theirSecondChanged = Object.values(theirSecond.changed).reduce((x, y) => x + y, 0);
  const theirs = collectState(managed, { addresses: SITE, labDir: LAB_DIR });
  snapshotSite(BUILT.theirs);
  // What we would change on what Ansible built (a dry run): the same site needs nothing.
  const ourCheck = cli(['--inventory', 'bench', '--check', '--json'], { allowFail: true });
  const ourCheckChanges = ourCheck.stdout.split('\n').filter((l) => l.includes('"kind":"task-result"') && l.includes('"status":"changed"'))
    .map((l) => JSON.parse(l)).map((e) => `${e.host}: ${e.task}`);
  // 2. We converge fresh hosts; Ansible's dry run on what we built.
  log('idiomatic: restoring fresh hosts; ours converges them');
  restoreFresh();
  const ourConvergeRun = await ourConverge();
  settle();
  const ours = collectState(managed, { addresses: SITE, labDir: LAB_DIR });
  const theirCheck = await idiomatic({ check: true });
  snapshotSite(BUILT.ours);
  builtThisRun = true;
  // 3. The comparison.
  const equivalence = compareStates(ours, theirs, secretValues);
  results.idiomatic = {
    ...results.idiomatic,
    version: a.version,
    converge: figure([theirConverge]),
    ourConverge: { ...figure([ourConvergeRun]), changedPerHost: runFigures(ourConvergeRun).recap.hosts },
    convergeChangedPerHost: theirConverge.changed,
    secondRunChanged: theirSecond.changed,
    ourCheckOnTheirs: { exitCode: ourCheck.status, changes: ourCheckChanges },
    theirCheckOnOurs: { changedPerHost: theirCheck.changed, changedTasks: theirCheck.changedTasks, failures: theirCheck.failures },
    equivalence,
    tasks: theirConverge.tasks.length,
    load: load(),
  };
  if (part('converge') && CONVERGE_RUNS === 1) results.converge = { ...figure([ourConvergeRun]), load: load(), within: 'idiomatic' };
  save();
  log(`idiomatic: equivalent to ours: ${equivalence.equivalent ? 'yes' : 'NO'}; its second run changed ${theirSecondChanged}; `
    + `our dry run on its hosts would change ${ourCheckChanges.length}; its dry run on ours would change ${Object.values(theirCheck.changed).reduce((x, y) => x + y, 0)}`);
  for (const [h, r] of Object.entries(equivalence.hosts)) {
    if (!r.same) log(`  ${h}: ${JSON.stringify({ packages: r.packages, differs: r.differs }).slice(0, 1500)}`);
  }
  if (theirSecondChanged) throw new Error(`the idiomatic playbook's second run changed ${JSON.stringify(theirSecond.changedTasks)}`);
}

async function partConverge() {
  const runs = [];
  for (let i = 0; i < CONVERGE_RUNS; i++) {
    log(`converge ${i + 1}/${CONVERGE_RUNS}: restoring fresh hosts`);
    restoreFresh();
    runs.push(await ourConverge());
    log(`converge ${i + 1}: ${(runs.at(-1).wallMs / 1000).toFixed(1)} s`);
  }
  results.converge = { ...figure(runs), load: load() };
  save();
}

async function partNoChange() {
  const floorCfg = floorConfig('site', SITE_HOSTS.map((name) => ({ name, address: SITE[name] })), LAB_DIR);
  log(`no-change run and floor, ${RUNS} runs each, interleaved (load ${load().join(' ')})`);
  const ours = [];
  const floor = [];
  for (let i = 0; i < RUNS; i++) {
    ours.push(...(await ourNoChange('bench', 'playbooks/site.yml', 1)));
    floor.push(await floorRun(floorCfg));
  }
  results.noChange = { ...summarise(ours), load: load() };
  results.floor = { ...figure(floor), roundTripsPerHost: 1 };
  save();
}

/**
 * Each side's no-change run on what that side built, interleaved round by round: restore Ansible's
 * hosts, one unmeasured run (a restore boots the hosts again: what a boot resets, e.g. a remount,
 * is put back here, and the fact cache is filled), then one measured run with the fact cache off and
 * one with it on; restore ours, settle, one measured run of ours. Used when the two sides do not
 * build the same hosts byte for byte, so neither can be timed on the other's result.
 */
async function partInterleavedNoChange() {
  ensureAnsible();
  const cacheDir = ensureDir(path.join(tmp(), 'fact-cache'));
  const off = [];
  const on = [];
  const ours = [];
  const loads = [load()];
  for (let i = 0; i < ANSIBLE_RUNS; i++) {
    log(`no-change round ${i + 1}/${ANSIBLE_RUNS}: the idiomatic playbook on what it built (fact cache off, on), ours on what we built (load ${load().join(' ')})`);
    restoreSite(BUILT.theirs);
    const warm = await idiomatic({ factCache: cacheDir });
    if (!warm.ok) throw new Error(`the idiomatic playbook failed on the hosts it built: ${warm.failures.join('; ')}`);
    for (const [into, factCache] of [[off, false], [on, cacheDir]]) {
      const r = await idiomatic({ factCache });
      if (!r.ok || Object.values(r.changed).some((c) => c !== 0)) {
        throw new Error(`the idiomatic playbook's no-change run changed or failed: ${JSON.stringify(r.changedTasks)} ${r.failures.join('; ')}`);
      }
      into.push(r);
    }
    restoreSite(BUILT.ours);
    settle();
    ours.push(...(await ourNoChange('bench', 'playbooks/site.yml', 1)));
    loads.push(load());
  }
  results.idiomatic = {
    ...results.idiomatic,
    version: ensureAnsible().version,
    noChange: {
      factCacheOff: figure(off), factCacheOn: figure(on), perTaskMs: perTask(off), tasksPerRun: off[0].tasks.length,
      oursInterleaved: summarise(ours), interleaved: true, loads,
    },
    load: load(),
  };
  save();
}

async function partAnsibleNoChange() {
  if (REUSE_BUILT) {
    const missing = SITE_HOSTS.flatMap((h) => Object.values(BUILT).filter((snap) => !snapshotExists(h, snap)).map((snap) => `${snap}/${h}`));
    if (missing.length) throw new Error(`--reuse-built: no snapshot ${missing.join(', ')} on instance ${NAME}`);
    return partInterleavedNoChange();
  }
  if (builtThisRun && !results.idiomatic?.equivalence?.equivalent) return partInterleavedNoChange();
  ensureAnsible();
  log(`idiomatic playbook: no-change runs, fact cache off (${ANSIBLE_RUNS}) and on (1 to fill it, then ${ANSIBLE_RUNS}) (load ${load().join(' ')})`);
  const off = await idiomaticNoChange(ANSIBLE_RUNS, false);
  const cacheDir = ensureDir(path.join(tmp(), 'fact-cache'));
  await idiomaticNoChange(1, cacheDir);
  const on = await idiomaticNoChange(ANSIBLE_RUNS, cacheDir);
  results.idiomatic = {
    ...results.idiomatic,
    version: ensureAnsible().version,
    noChange: { factCacheOff: figure(off), factCacheOn: figure(on), perTaskMs: perTask(off), tasksPerRun: off[0].tasks.length },
    load: load(),
  };
  save();
}

async function partGenerated() {
  const a = prepareGenerated();
  results.ansibleTasks = a.tasks;
  log(`generated per-item translation: no-change runs, ${ANSIBLE_RUNS} (load ${load().join(' ')})`);
  const runs = [];
  for (let i = 0; i < ANSIBLE_RUNS; i++) runs.push(await generatedRun(a));
  results.ansible = { version: ensureAnsible().version, ...figure(runs), okTasksPerHost: runs[0].tasks, load: load() };
  save();
}

async function partGeneratedConverge() {
  const ours = [];
  const theirs = [];
  for (let i = 0; i < CONVERGE_RUNS; i++) {
    restoreFresh();
    ours.push(await ourConverge('bench/scale.yml', CONVERGE_HOSTS));
    log(`converge of bench/scale.yml on fresh hosts, ours ${i + 1}: ${(ours.at(-1).wallMs / 1000).toFixed(1)} s`);
    restoreFresh();
    theirs.push(await generatedRun(prepareGenerated('bench/scale.yml'), true, CONVERGE_HOSTS));
    log(`the same, the generated Ansible playbook ${i + 1}: ${(theirs.at(-1).wallMs / 1000).toFixed(1)} s`);
  }
  results.lightConverge = { playbook: 'bench/scale.yml', hosts: CONVERGE_HOSTS.length ? CONVERGE_HOSTS : SITE_HOSTS, ours: figure(ours), ansible: { ...figure(theirs), changedPerHost: theirs[0].changed }, load: load() };
  save();
  settle();
}

async function partLatency() {
  ensureAnsible();
  results.latency = { rttMs: RTTS, runs: RTT_RUNS, ansibleRuns: RTT_ANSIBLE_RUNS, byRtt: {} };
  for (const rtt of RTTS) {
    await withLatency({ rttMs: rtt, addresses: Object.values(SITE), stateFile: RELAY_STATE }, async () => {
      log(`latency ${rtt} ms: our no-change run ×${RTT_RUNS}, the idiomatic playbook's ×${RTT_ANSIBLE_RUNS} (load ${load().join(' ')})`);
      const ours = await ourNoChange('bench', 'playbooks/site.yml', RTT_RUNS);
      const theirs = await idiomaticNoChange(RTT_ANSIBLE_RUNS, false);
      results.latency.byRtt[rtt] = {
        ours: summarise(ours),
        ansible: { ...figure(theirs), perTaskMs: perTask(theirs) },
        load: load(),
      };
    });
    save();
  }
  // How each side grows with the round-trip time: seconds added per ms of RTT (a slope over the RTTs
  // measured), that is, how many round trips the run waits for one after the other.
  const slope = (pick) => {
    const pts = RTTS.map((r) => [r, pick(results.latency.byRtt[r])]).filter(([, y]) => Number.isFinite(y));
    if (pts.length < 2) return undefined;
    const mx = pts.reduce((a, [x]) => a + x, 0) / pts.length;
    const my = pts.reduce((a, [, y]) => a + y, 0) / pts.length;
    return round(pts.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / pts.reduce((a, [x]) => a + (x - mx) ** 2, 0) * 1000);
  };
  results.latency.sequentialRoundTrips = {
    ours: slope((b) => b.ours.wallS.median),
    ansible: slope((b) => b.ansible.wallS.median),
  };
  // Per task: the Ansible task's time at the highest RTT against the lowest.
  const lo = results.latency.byRtt[Math.min(...RTTS)];
  const hi = results.latency.byRtt[Math.max(...RTTS)];
  if (lo && hi && RTTS.length > 1) {
    const span = Math.max(...RTTS) - Math.min(...RTTS);
    results.latency.ansiblePerTask = lo.ansible.perTaskMs.map((t, i) => ({
      task: t.task, msAtLow: t.ms, msAtHigh: hi.ansible.perTaskMs[i]?.ms, roundTrips: round(((hi.ansible.perTaskMs[i]?.ms ?? NaN) - t.ms) / span),
    }));
  }
  save();
}

async function partStartup() {
  const noop = path.join(tmp(), 'noop.yml');
  const inv = path.join(root, 'inventory/bench.yml');
  const variants = [
    ['node bin/provision.cjs --version', process.execPath, [cliOf(root), '--version']],
    ['node bin/provision.cjs, a no-op run', process.execPath, [cliOf(root), '--inventory', inv, '--playbook', noop, '--json']],
    // From a project that has this checkout installed, never fetching (bench/lib.mjs npxProject).
    ['npx provision --version', 'npx', ['--no', '--', 'provision', '--version'], npxProject(root)],
    ['npx provision, a no-op run', 'npx', ['--no', '--', 'provision', '--inventory', inv, '--playbook', noop, '--json'], npxProject(root)],
    ['node -e 0 (Node alone)', process.execPath, ['-e', '0']],
    ...(STARTUP_BASELINE
      ? [
          [`baseline ${STARTUP_BASELINE}: --version`, process.execPath, [cliOf(STARTUP_BASELINE), '--version']],
          [`baseline ${STARTUP_BASELINE}: a no-op run`, process.execPath, [cliOf(STARTUP_BASELINE), '--inventory', inv, '--playbook', noop, '--json']],
        ]
      : []),
  ];
  log(`start-up: ${variants.length} commands × ${STARTUP_RUNS}, interleaved (load ${load().join(' ')})`);
  const rows = variants.map(() => []);
  for (let i = 0; i < STARTUP_RUNS; i++) {
    for (const [k, [, cmd, argv, cwd]] of variants.entries()) {
      const r = await measure(cmd, argv, { cwd });
      if (r.code !== 0) throw new Error(`${variants[k][0]} exited ${r.code}: ${r.stderr.slice(-500)}`);
      const recap = r.stdout.includes('"kind":"recap"') ? runFigures(r) : undefined;
      rows[k].push({ ...r, startupMs: recap?.startupMs, connectMs: recap?.connectMs });
    }
  }
  results.startup = {
    runs: STARTUP_RUNS,
    commands: Object.fromEntries(variants.map(([label], k) => [label, {
      ...figure(rows[k]),
      ...(rows[k][0].startupMs !== undefined ? { startupMs: stats(rows[k].map((r) => r.startupMs)), connectMs: stats(rows[k].map((r) => r.connectMs)) } : {}),
    }])),
    load: load(),
  };
  save();
}

async function partScale() {
  const max = Math.max(...SCALE);
  if (Math.ceil(max / 200) > SCALE_SUBNETS.length) throw new Error(`--scale ${max} needs ${Math.ceil(max / 200)} /24s in --scale-subnets`);
  // With --merge the sizes measured by earlier runs stay (one size per run on a small machine).
  results.scale = { ...(results.scale ?? {}) };
  // One size at a time, each on fresh hosts (a scale host keeps its files in memory: down and up
  // again starts it fresh), so each size has its own first converge and only its hosts are up.
  for (const n of SCALE) {
    const subnets = SCALE_SUBNETS.slice(0, Math.ceil(n / 200));
    cli(['lab', 'down', '--name', SCALE_NAME], { allowFail: true });
    const upT0 = performance.now();
    labUp(SCALE_NAME, ['--subnet', subnets[0], '--scale-hosts', String(n), ...(subnets.length > 1 ? ['--scale-subnets', subnets.slice(1).join(',')] : [])]);
    const upS = round((performance.now() - upT0) / 1000);
    const state = JSON.parse(readFileSync(path.join(SCALE_LAB_DIR, 'state.json'), 'utf8'));
    const mine = Object.values(state.scale.hosts).sort((a, b) => a.index - b.index).slice(0, n);
    if (mine.length !== n) throw new Error(`lab ${SCALE_NAME}: ${mine.length} scale hosts up, ${n} wanted`);
    const inv = `bench-scale-${n}`;
    writeFileSync(path.join(root, `inventory/${inv}.yml`), [
      `# Generated by scripts/bench.mjs: the first ${n} cheap scale hosts of the lab instance "${SCALE_NAME}".`,
      'defaults:', '  user: root', `  identity_file: ${SCALE_LAB_DIR}/ssh/id_ed25519`, `  known_hosts: ${SCALE_LAB_DIR}/ssh/known_hosts`, '  connect_timeout: 60', '',
      'hosts:', ...mine.flatMap((h) => [`  ${h.name}:`, `    address: ${h.address}`]), '',
    ].join('\n'));
    log(`scale ${n}: lab up ${upS} s; first converge of bench/scale-hosts.yml (load ${load().join(' ')})`);
    const c = await measure(process.execPath, [cliOf(root), '--inventory', inv, '--playbook', 'bench/scale-hosts.yml', '--json', ...forksArgs]);
    if (c.code !== 2) throw new Error(`${inv}: the first converge exited ${c.code} (2 expected): ${c.stderr.slice(-500)}`);
    const floorCfg = floorConfig(`scale-${n}`, mine.map((h) => ({ name: h.name, address: h.address })), SCALE_LAB_DIR);
    log(`scale ${n}: converge ${(c.wallMs / 1000).toFixed(1)} s; no-change runs and floor, ${RUNS} each, interleaved (load ${load().join(' ')})`);
    const ours = [];
    const floor = [];
    const busy = [];
    const also = [];
    for (let i = 0; i < RUNS; i++) {
      const b0 = machineBusyS();
      ours.push(...(await ourNoChange(inv, 'bench/scale-hosts.yml', 1, forksArgs)));
      busy.push(machineBusyS() - b0);
      floor.push(await floorRun(floorCfg));
      if (ALSO_FORKS) {
        also.push(...(await ourNoChange(inv, 'bench/scale-hosts.yml', 1, ['--forks', String(ALSO_FORKS)])));
        log(`scale ${n}: run ${i + 1} with --forks ${ALSO_FORKS}: ${(also.at(-1).wallMs / 1000).toFixed(2)} s, ${also.at(-1).cpuS.toFixed(2)} s CPU, ${also.at(-1).rssMB.toFixed(0)} MB`);
      }
      log(`scale ${n}: run ${i + 1}: ours ${(ours.at(-1).wallMs / 1000).toFixed(2)} s, ${ours.at(-1).cpuS.toFixed(2)} s CPU, ${ours.at(-1).rssMB.toFixed(0)} MB; floor ${(floor.at(-1).wallMs / 1000).toFixed(2)} s`);
    }
    // One more run, not among the figures: where the peak memory is (heap, Buffers, the rest of RSS).
    // --scale-no-memory-run leaves it out (a long size on a busy machine).
    const memFile = path.join(tmp(), `mem-${n}.json`);
    if (!flag('scale-no-memory-run')) await ourNoChange(inv, 'bench/scale-hosts.yml', 1, forksArgs, {
      env: { NODE_OPTIONS: `--require ${path.join(root, 'bench/memory-peaks.cjs')}`, BENCH_MEM_OUT: memFile, ...(process.env.BENCH_SNAP_AT_MB ? { BENCH_SNAP_AT_MB: process.env.BENCH_SNAP_AT_MB, BENCH_SNAP_FILE: `/tmp/provision-bench-${n}.heapsnapshot` } : {}) },
    });
    const memoryPeaksMB = existsSync(memFile) ? JSON.parse(readFileSync(memFile, 'utf8')) : undefined;
    log(`scale ${n}: memory peaks (MB) ${JSON.stringify(memoryPeaksMB)}`);
    let alsoForks;
    if (ALSO_FORKS) {
      const alsoMem = path.join(tmp(), `mem-${n}-forks.json`);
      if (!flag('scale-no-memory-run')) await ourNoChange(inv, 'bench/scale-hosts.yml', 1, ['--forks', String(ALSO_FORKS)], { env: { NODE_OPTIONS: `--require ${path.join(root, 'bench/memory-peaks.cjs')}`, BENCH_MEM_OUT: alsoMem } });
      alsoForks = { forks: ALSO_FORKS, ...summarise(also), memoryPeaksMB: existsSync(alsoMem) ? JSON.parse(readFileSync(alsoMem, 'utf8')) : undefined };
      log(`scale ${n}: with --forks ${ALSO_FORKS}: ${JSON.stringify({ wallS: alsoForks.wallS.median, cpuS: alsoForks.cpuS.median, rssMB: alsoForks.rssMB.median, memoryPeaksMB: alsoForks.memoryPeaksMB })}`);
    }
    const s = summarise(ours);
    const floorWall = stats(floor.map((r) => r.wallMs / 1000)).median;
    results.scale[n] = {
      hostKind: 'cheap (sshd only)',
      playbook: 'bench/scale-hosts.yml',
      forks: FORKS ?? 'default',
      labUpS: upS,
      converge: { ...figure([c]), perHost: { cpuMs: round((c.cpuS * 1000) / n), rssMB: round(c.rssMB / n) } },
      ...s,
      perHost: { cpuMs: round((s.cpuS.median * 1000) / n), rssMB: round(s.rssMB.median / n) },
      machineCpuS: stats(busy.map(round)),
      memoryPeaksMB,
      alsoForks,
      floor: { kind: 'OpenSSH ssh, one batched state read per host, same forks', ...figure(floor) },
      oursOverFloor: round(s.wallS.median / floorWall),
      load: load(),
    };
    save();
    cli(['lab', 'down', '--name', SCALE_NAME], { allowFail: true });
  }
  // What each host adds: the slope between the smallest and the largest size (Node's own base cost apart).
  const sizes = Object.keys(results.scale).map(Number);
  const [a, b] = [Math.min(...sizes), Math.max(...sizes)];
  if (a !== b && results.scale[a] && results.scale[b]) {
    results.scaleMarginal = {
      cpuMsPerHost: round(((results.scale[b].cpuS.median - results.scale[a].cpuS.median) * 1000) / (b - a)),
      rssMBPerHost: round((results.scale[b].rssMB.median - results.scale[a].rssMB.median) / (b - a)),
      between: [a, b],
    };
  }
  save();
}

// ------------------------------------------------------------------------------------------- main
async function main() {
  sh(process.execPath, ['scripts/build.mjs']);
  cleanupStale(RELAY_STATE);
  if (needsSite) {
    ensureSecrets();
    labUp(NAME, ['--subnet', `${SUBNET}.0/24`]);
    writeSiteInventory();
    // The fresh hosts are kept as a snapshot the first time the instance is seen.
    if (!SITE_HOSTS.every((h) => snapshotExists(h, 'fresh'))) {
      const status = cli(['facts', '--inventory', 'bench', '--limit', 'web-01']).stdout;
      if (/"prometheus-node-exporter"/.test(status)) {
        throw new Error(`the "${NAME}" hosts are converged but have no "fresh" snapshot: run "provision lab down --name ${NAME}" and again`);
      }
      snapshotSite('fresh');
    }
    if (part('idiomatic')) await partIdiomatic();
    if (part('converge') && results.converge?.within !== 'idiomatic') await partConverge();
    // Not before the interleaved rounds on snapshots: they restore each side's hosts themselves.
    if (!REUSE_BUILT) settle();
    if (part('nochange')) await partNoChange();
    if (part('ansible-nochange')) await partAnsibleNoChange();
    if (part('ansible')) await partGenerated();
    if (part('ansible-converge')) await partGeneratedConverge();
    if (part('latency')) await partLatency();
    if (part('startup')) await partStartup();
  }
  if (part('scale') && SCALE.length) await partScale();

  results.ratios = {
    oursOverFloor: results.noChange && results.floor ? round(results.noChange.wallS.median / results.floor.wallS.median) : undefined,
    idiomaticOverOurs: results.idiomatic?.noChange && (results.idiomatic.noChange.oursInterleaved ?? results.noChange)
      ? round(results.idiomatic.noChange.factCacheOff.wallS.median / (results.idiomatic.noChange.oursInterleaved ?? results.noChange).wallS.median) : undefined,
    generatedOverOurs: results.ansible && results.noChange ? round(results.ansible.wallS.median / results.noChange.wallS.median) : undefined,
    convergeAnsibleOverOurs: results.lightConverge ? round(results.lightConverge.ansible.wallS.median / results.lightConverge.ours.wallS.median) : undefined,
  };
  results.loadAtEnd = load();
  save();
  printTable(results);
}

function printTable(r) {
  const f = (s, unit = '') => (s && Number.isFinite(s.median) ? `${s.median}${unit} (${s.min}–${s.max})` : '-');
  const row = (label, x, trips = '') => [label, f(x?.wallS, ' s'), f(x?.cpuS, ' s'), f(x?.rssMB, ' MB'), trips];
  const im = r.idiomatic;
  const rows = [
    row('idiomatic Ansible: converge from fresh (4 site hosts, 1 run)', im?.converge),
    row('ours: converge from fresh, within the idiomatic part (1 run)', im?.ourConverge),
    row('idiomatic Ansible: no-change run, fact cache off', im?.noChange?.factCacheOff),
    row('idiomatic Ansible: no-change run, fact cache on', im?.noChange?.factCacheOn),
    row('ours: no-change run, in the same rounds as the two above', im?.noChange?.oursInterleaved),
    row('ours: converge from fresh (4 site hosts)', r.converge),
    row('ours: no-change run (4 site hosts)', r.noChange, r.noChange ? String(r.noChange.roundTripsPerHost.median) : ''),
    row('floor: one batched script per host', r.floor, '1'),
    row('generated per-item Ansible: no-change run', r.ansible),
    row('bench/scale.yml from fresh, ours', r.lightConverge?.ours),
    row('bench/scale.yml from fresh, generated Ansible', r.lightConverge?.ansible),
    ...Object.entries(r.latency?.byRtt ?? {}).flatMap(([rtt, b]) => [
      row(`${rtt} ms RTT: ours, no-change`, b.ours, String(b.ours.roundTripsPerHost.median)),
      row(`${rtt} ms RTT: idiomatic Ansible, no-change`, b.ansible),
    ]),
    ...Object.entries(r.startup?.commands ?? {}).map(([label, s]) => row(`start-up: ${label}${s.startupMs ? ` (to first connect ${s.startupMs.median} ms)` : ''}`, s)),
    ...Object.entries(r.scale ?? {}).flatMap(([n, s]) => [
      row(`scale: no-change, ${n} cheap hosts (${s.perHost?.cpuMs} ms CPU, ${s.perHost?.rssMB} MB per host)`, s, String(s.roundTripsPerHost?.median)),
      row(`scale: floor, ${n} hosts`, s.floor, '1'),
    ]),
  ].filter((x) => x.slice(1, 4).some((c) => c !== '-'));
  const head = ['', 'wall: median (min–max)', 'controller CPU', 'controller peak RSS', 'round trips/host'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |';
  const out = [line(head), '|' + w.map((x) => '-'.repeat(x + 2)).join('|') + '|', ...rows.map(line), ''];
  if (im?.equivalence) out.push(`idiomatic Ansible builds the same site as ours (packages, files modulo comments, links, units, ufw, MySQL): ${im.equivalence.equivalent ? 'yes' : 'NO, see bench/results.json idiomatic.equivalence'}`);
  out.push(`ours / floor: ${r.ratios.oursOverFloor ?? '-'}×   idiomatic Ansible / ours: ${r.ratios.idiomaticOverOurs ?? '-'}×   generated Ansible / ours: ${r.ratios.generatedOverOurs ?? '-'}× (no change)`);
  if (r.latency?.sequentialRoundTrips) out.push(`round trips waited for one after the other (seconds added per ms of RTT ×1000): ours ${r.latency.sequentialRoundTrips.ours}, idiomatic Ansible ${r.latency.sequentialRoundTrips.ansible}`);
  if (r.latency?.ansiblePerTask?.length) {
    const [lo, hi] = [Math.min(...r.latency.rttMs), Math.max(...r.latency.rttMs)];
    out.push(`idiomatic Ansible, per task at ${lo} → ${hi} ms RTT (ms; the round trips each task waits for one after another), the ten that grow most:`);
    for (const t of [...r.latency.ansiblePerTask].sort((a, b) => (b.msAtHigh - b.msAtLow) - (a.msAtHigh - a.msAtLow)).slice(0, 10)) {
      out.push(`  ${String(t.msAtLow).padStart(7)} → ${String(t.msAtHigh).padStart(7)}  (${t.roundTrips})  ${t.task}`);
    }
  }
  for (const [n, s] of Object.entries(r.scale ?? {})) out.push(`${n} hosts: ours / floor ${s.oursOverFloor}×; the whole machine spent ${s.machineCpuS?.median} s of CPU per run`);
  if (r.scaleMarginal) out.push(`each host beyond ${r.scaleMarginal.between[0]}: ${r.scaleMarginal.cpuMsPerHost} ms of controller CPU, ${r.scaleMarginal.rssMBPerHost} MB of peak RSS`);
  const ph = r.noChange?.phasesMs;
  if (ph) out.push(`no-change run, where the time goes (median ms; slowest host): process start to run ${ph.startup.median}, connect ${ph.connect.median}, facts ${ph.facts.median}, state read ${ph.read.median}`);
  out.push(`machine: ${r.machine.nproc} cores (${r.machine.cpu}), ${r.machine.memoryGB} GB, Linux ${r.machine.kernel}, Node ${r.machine.node}; load ${r.machine.loadAtStart.join(' ')} at start, ${r.loadAtEnd.join(' ')} at end`);
  process.stdout.write(out.join('\n') + '\n');
}

try {
  await main();
} catch (err) {
  log(`error: ${err.stack ?? err.message}`);
  process.exitCode = 1;
} finally {
  removeTmp();
  if (!flag('keep')) {
    for (const name of broughtUp) {
      log(`lab down --name ${name}`);
      cli(['lab', 'down', '--name', name], { allowFail: true });
    }
  }
}
