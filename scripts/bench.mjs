#!/usr/bin/env node
// npm run bench [-- --runs N --converge-runs N --ansible-runs N --scale 10,25,50 --skip-converge --skip-ansible --skip-scale --keep]
//
// The speed benchmark on the lab instance "bench" (10.85.0.0/24, never the default lab):
//   1. converge the reference site from fresh hosts (snapshots "fresh" restored before each run),
//   2. the no-change run: wall time, controller CPU (user+sys), controller peak RSS, SSH round trips per host,
//   3. the floor: the same hosts answering ONE batched state-reading script each (bench/floor.mjs, ssh2),
//   4. Ansible's no-change run of the equivalent playbook (bench/ansible, generated from our expanded tasks),
//      and its converge from the same fresh hosts,
//   5. scale: the no-change run of bench/scale.yml on 10, 25, 50 generic lab hosts.
// Every figure is a fresh process, measured from start to end; median, min and max of N runs.
// Prints a table and writes bench/results.json. Brings the instance down at the end (unless --keep).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const NAME = 'bench';
const SUBNET = '10.85.0';
const LAB_DIR = `/var/lib/provision-lab/${NAME}`;
const SITE_HOSTS = ['lb-01', 'web-01', 'web-02', 'mon-01'];

// ------------------------------------------------------------------------------------------- options
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(`--${name}`);
const RUNS = Number(opt('runs', process.env.BENCH_RUNS ?? 5));
const CONVERGE_RUNS = Number(opt('converge-runs', 1));
const ANSIBLE_RUNS = Number(opt('ansible-runs', 3));
const SCALE = flag('skip-scale') ? [] : opt('scale', '10,25,50').split(',').map(Number).filter(Boolean);
// --only PART[,PART…] runs only those parts (converge, nochange, ansible, ansible-converge, scale);
// --merge keeps the figures of bench/results.json that this run does not measure.
const ONLY = opt('only', '').split(',').filter(Boolean);
// The hosts of the converge comparison with Ansible (default: all four site hosts).
const CONVERGE_HOSTS = opt('converge-hosts', '').split(',').filter(Boolean);
const part = (name, skipFlag) => (ONLY.length ? ONLY.includes(name) : !flag(skipFlag));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'provision-bench-'));

const log = (s) => process.stderr.write(`bench: ${s}\n`);
const load = () => os.loadavg().map((x) => Number(x.toFixed(2)));

// ------------------------------------------------------------------------------------------- helpers
function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20, ...opts });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${argv.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).slice(-2000)}`);
  return r;
}
const cli = (argv, opts) => sh(process.execPath, [path.join(root, 'bin/provision.mjs'), ...argv], opts);

/** Run a command as a measured process: wall (ms), user+sys CPU (s), peak RSS (MB), stdout, exit code. */
function measure(cmd, argv, opts = {}) {
  const timeFile = path.join(tmp, 'time.txt');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', '%U %S %M', '-o', timeFile, cmd, ...argv], { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env } });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = performance.now() - t0;
      const [u, s, kb] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      resolve({ wallMs, cpuS: u + s, rssMB: kb / 1024, code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median: round(m), min: round(s[0]), max: round(s[s.length - 1]), n: s.length };
};
const round = (x) => Math.round(x * 100) / 100;

function recapOf(stdout) {
  const line = stdout.trim().split('\n').reverse().find((l) => l.includes('"kind":"recap"'));
  if (!line) throw new Error(`no recap in output:\n${stdout.slice(-2000)}`);
  return JSON.parse(line);
}

/** N no-change runs of our CLI: each must change nothing. */
async function ourNoChange(inventory, playbook, runs) {
  const rows = [];
  for (let i = 0; i < runs; i++) {
    const r = await measure(process.execPath, [path.join(root, 'bin/provision.mjs'), '--inventory', inventory, '--playbook', playbook, '--json']);
    const recap = recapOf(r.stdout);
    const changed = Object.values(recap.hosts).reduce((a, c) => a + c.changed + c.failed + c.unreachable, 0);
    if (r.code !== 0 || changed) throw new Error(`${inventory}: the no-change run changed or failed (exit ${r.code}): ${JSON.stringify(recap.hosts)}`);
    const trips = Object.values(recap.roundTrips ?? {});
    // The slowest host's phases: what the run waited for.
    const hostPhases = Object.values(recap.phases?.hosts ?? {});
    const slowest = (k) => (hostPhases.length ? Math.max(...hostPhases.map((h) => h[k] ?? 0)) : NaN);
    rows.push({
      wallMs: r.wallMs, cpuS: r.cpuS, rssMB: r.rssMB, roundTripsPerHost: trips.length ? Math.max(...trips) : undefined, engineMs: recap.wallMs,
      startupMs: recap.phases?.startupMs ?? NaN, connectMs: slowest('connectMs'), factsMs: slowest('factsMs'), readMs: slowest('readMs'),
    });
  }
  return {
    wallS: stats(rows.map((r) => r.wallMs / 1000)),
    engineS: stats(rows.map((r) => r.engineMs / 1000)),
    cpuS: stats(rows.map((r) => r.cpuS)),
    rssMB: stats(rows.map((r) => r.rssMB)),
    roundTripsPerHost: stats(rows.map((r) => r.roundTripsPerHost ?? NaN)),
    phasesMs: {
      startup: stats(rows.map((r) => r.startupMs)), connect: stats(rows.map((r) => r.connectMs)),
      facts: stats(rows.map((r) => r.factsMs)), read: stats(rows.map((r) => r.readMs)),
    },
    load: load(),
  };
}

// ------------------------------------------------------------------------------------------- lab and inventories
function writeInventories(maxScale) {
  const site = readFileSync(path.join(root, 'inventory/lab.yml'), 'utf8')
    .replace(/10\.77\.0\./g, `${SUBNET}.`)
    .replace(/\/provision-lab\/default\//g, `/provision-lab/${NAME}/`);
  writeFileSync(path.join(root, 'inventory/bench.yml'), site);
  for (const n of SCALE.filter((x) => x <= maxScale)) {
    const lines = [
      `# Generated by scripts/bench.mjs: ${n} generic hosts of the "${NAME}" lab instance (scale benchmark).`,
      'defaults:', '  user: root', `  identity_file: ${LAB_DIR}/ssh/id_ed25519`, `  known_hosts: ${LAB_DIR}/ssh/known_hosts`, '  connect_timeout: 30', '', 'hosts:',
    ];
    for (let i = 1; i <= n; i++) lines.push(`  node-${String(i).padStart(3, '0')}:`, `    address: ${SUBNET}.${100 + i}`);
    lines.push('', 'vars:', `  admin_cidrs: [${SUBNET}.1/32]`, `  monitoring_cidrs: [${SUBNET}.20/32]`, '');
    writeFileSync(path.join(root, `inventory/bench-scale-${n}.yml`), lines.join('\n'));
  }
}

function labUp(nodes) {
  // Each booted host's systemd takes inotify instances; the kernel default (128 per user) stops ~15 hosts.
  const limit = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
  if (nodes > 0 && limit < 4096) {
    log(`raising fs.inotify.max_user_instances ${limit} → 4096 (runtime only) so ${nodes} more hosts can boot`);
    writeFileSync('/proc/sys/fs/inotify/max_user_instances', '4096');
  }
  log(`lab up --name ${NAME} (${SITE_HOSTS.length} site hosts${nodes ? ` + ${nodes} generic hosts` : ''})`);
  // A boot can fail under heavy load; up is idempotent, so try again.
  for (let i = 0; ; i++) {
    const r = cli(['lab', 'up', '--name', NAME, '--subnet', `${SUBNET}.0/24`, ...(nodes ? ['--hosts', String(nodes)] : [])], { allowFail: true });
    if (r.status === 0) return r.stdout;
    if (i === 2) throw new Error(`lab up failed: ${r.stderr}`);
    log(`lab up failed (${r.stderr.trim().split('\n').pop()}), again`);
    // A host that booted without its sshd (it happens under heavy load) is restarted.
    const stuck = /provision lab: (\S+) \(\S+\) not reachable over SSH/.exec(r.stderr)?.[1];
    if (stuck) for (const c of ['stop-host', 'start-host']) cli(['lab', c, stuck, '--name', NAME], { allowFail: true });
  }
}

/** The floor's config (bench/floor.mjs): these hosts, each answering our batched fact script. */
let factScript;
function floorConfig(name, hosts) {
  if (!factScript) {
    factScript = path.join(tmp, 'facts.sh');
    writeFileSync(factScript, sh('npx', ['tsx', 'bench/fact-script.ts']).stdout);
  }
  const file = path.join(tmp, `floor-${name}.json`);
  writeFileSync(file, JSON.stringify({
    hosts: hosts.map((h) => ({ ...h, port: 22 })),
    user: 'root', key: `${LAB_DIR}/ssh/id_ed25519`, knownHosts: `${LAB_DIR}/ssh/known_hosts`, script: factScript,
  }));
  return file;
}

/** CPU time the whole machine spent (all cores, every process: controller, lab hosts, background), in s. */
function machineBusyS() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK;
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

const snapshotExists = (host, snap) => existsSync(path.join(LAB_DIR, 'snapshots', snap, host));


// ------------------------------------------------------------------------------------------- Ansible
let ansibleReady;
/** Ansible installed, the task files generated from our expanded site as the hosts are now, the inventory written. */
function prepareAnsible(playbook = 'playbooks/site.yml') {
  if (!ansibleReady) {
    const have = spawnSync('ansible-galaxy', ['collection', 'list', 'community.general'], { encoding: 'utf8' });
    if (have.status !== 0 || !/community\.general/.test(have.stdout)) {
      log('installing Ansible (Debian packages ansible-core and ansible, for community.general.ufw and ansible.posix)');
      sh('apt-get', ['install', '-y', '-q', 'ansible-core', 'ansible'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    }
    const hosts = path.join(tmp, 'hosts.yml');
    writeFileSync(hosts, [
      'all:', '  vars:', '    ansible_user: root', `    ansible_ssh_private_key_file: ${LAB_DIR}/ssh/id_ed25519`,
      `    ansible_ssh_common_args: -o UserKnownHostsFile=${LAB_DIR}/ssh/known_hosts -o StrictHostKeyChecking=yes`, '  hosts:',
      ...SITE_HOSTS.map((h, i) => `    ${h}: {ansible_host: ${SUBNET}.${[10, 11, 12, 20][i]}}`), '',
    ].join('\n'));
    ansibleReady = { hosts, secrets: path.join(tmp, 'secrets.yml'), version: sh('ansible-playbook', ['--version']).stdout.split('\n')[0] };
  }
  log('generating the Ansible tasks from our expanded site');
  const tasks = JSON.parse(sh('npx', ['tsx', 'bench/ansible/generate.ts', 'bench', playbook, 'bench/ansible', ansibleReady.secrets]).stdout);
  return { ...ansibleReady, tasks };
}

let ansibleRunNo = 0;
/** One ansible-playbook run of the generated site, measured. `converge`: changes are expected. */
async function ansibleRun(a, converge = false, limit = []) {
  // A fresh ControlPath dir per run: no SSH master survives from one run into the next.
  const env = { ANSIBLE_CONFIG: path.join(root, 'bench/ansible/ansible.cfg'), ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(tmp, `cp-${++ansibleRunNo}`), ANSIBLE_NOCOLOR: '1' };
  const r = await measure('ansible-playbook', ['-i', a.hosts, '-e', `@${a.secrets}`, ...(limit.length ? ['--limit', limit.join(',')] : []), 'site.yml'], { cwd: path.join(root, 'bench/ansible'), env });
  const recap = [...r.stdout.matchAll(/^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)];
  if (r.code !== 0 || recap.length !== (limit.length || SITE_HOSTS.length) || (!converge && recap.some((m) => m[3] !== '0'))) {
    const fatal = r.stdout.split('\n').filter((l, i, all) => /^fatal:/.test(l) || /^fatal:/.test(all[i + 1] ?? '')).join('\n');
    throw new Error(`Ansible's ${converge ? 'converge' : 'no-change run'} did not succeed${converge ? '' : ' without changes'} (exit ${r.code}):\n${fatal.slice(0, 3000)}\n${r.stdout.slice(-1500)}`);
  }
  return { ...r, tasks: Object.fromEntries(recap.map((m) => [m[1], Number(m[2])])), changed: Object.fromEntries(recap.map((m) => [m[1], Number(m[3])])) };
}

// ------------------------------------------------------------------------------------------- the parts
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

async function main() {
  const maxScale = Math.max(0, ...SCALE);
  if (!existsSync(path.join(root, 'dist/provision.mjs'))) sh('node', ['scripts/build.mjs']);
  labUp(0);
  writeInventories(maxScale);

  // The fresh hosts are kept as a snapshot the first time the instance is seen, whatever is measured.
  if (!SITE_HOSTS.every((h) => snapshotExists(h, 'fresh'))) {
    // Only right after the instance was made are its hosts fresh: refuse to snapshot converged hosts.
    const status = cli(['facts', '--inventory', 'bench', '--limit', 'web-01']).stdout;
    if (/"prometheus-node-exporter"/.test(status)) {
      if (part('converge', 'skip-converge') || part('ansible-converge', 'skip-converge')) throw new Error(`the "${NAME}" hosts are converged but have no "fresh" snapshot: run "provision lab down --name ${NAME}" and again`);
    } else {
      for (const h of SITE_HOSTS) cli(['lab', 'snapshot', h, 'fresh', '--name', NAME]); // one at a time: the lab state file is shared
    }
  }
  // 1. converge from fresh hosts.
  if (part('converge', 'skip-converge')) {
    const runs = [];
    for (let i = 0; i < CONVERGE_RUNS; i++) {
      log(`converge ${i + 1}/${CONVERGE_RUNS}: restoring fresh hosts`);
      for (const h of SITE_HOSTS) cli(['lab', 'restore', h, 'fresh', '--name', NAME]);
      const r = await measure(process.execPath, [path.join(root, 'bin/provision.mjs'), '--inventory', 'bench', '--json']);
      const recap = recapOf(r.stdout);
      if (r.code !== 2) throw new Error(`converge exited ${r.code}: ${JSON.stringify(recap.hosts)}`);
      runs.push({ wallMs: r.wallMs, cpuS: r.cpuS, rssMB: r.rssMB });
      log(`converge ${i + 1}: ${(r.wallMs / 1000).toFixed(1)} s`);
    }
    results.converge = { wallS: stats(runs.map((r) => r.wallMs / 1000)), cpuS: stats(runs.map((r) => r.cpuS)), rssMB: stats(runs.map((r) => r.rssMB)), load: load() };
    save();
  }
  // A run that changes nothing is the precondition of everything below.
  const settle = cli(['--inventory', 'bench', '--json'], { allowFail: true });
  if (settle.status !== 0) {
    const again = cli(['--inventory', 'bench', '--json'], { allowFail: true });
    if (again.status !== 0) throw new Error(`the site does not converge to no-change (exit ${again.status})`);
  }

  if (part('nochange', 'skip-no-change')) {
    // 2. our no-change run, 3. the floor, interleaved so both see the same load.
    const floorCfg = floorConfig('site', SITE_HOSTS.map((name, i) => ({ name, address: `${SUBNET}.${[10, 11, 12, 20][i]}` })));
    log(`no-change run and floor, ${RUNS} runs each (load ${load().join(' ')})`);
    const floorRuns = [];
    const ours = [];
    for (let i = 0; i < RUNS; i++) {
      ours.push(await ourNoChange('bench', 'playbooks/site.yml', 1));
      const f = await measure(process.execPath, [path.join(root, 'bench/floor.mjs'), floorCfg]);
      if (f.code !== 0) throw new Error(`floor failed: ${f.stderr}`);
      floorRuns.push(f);
    }
    const pick = (k) => stats(ours.map((o) => o[k].median));
    results.noChange = {
      wallS: pick('wallS'), engineS: pick('engineS'), cpuS: pick('cpuS'), rssMB: pick('rssMB'), roundTripsPerHost: pick('roundTripsPerHost'),
      phasesMs: Object.fromEntries(['startup', 'connect', 'facts', 'read'].map((k) => [k, stats(ours.map((o) => o.phasesMs[k].median))])),
      load: load(),
    };
    results.floor = { wallS: stats(floorRuns.map((r) => r.wallMs / 1000)), cpuS: stats(floorRuns.map((r) => r.cpuS)), rssMB: stats(floorRuns.map((r) => r.rssMB)), roundTripsPerHost: 1 };
    save();

  }

  // 4. Ansible's no-change run of the equivalent playbook.
  if (part('ansible', 'skip-ansible')) {
    const a = prepareAnsible();
    results.ansibleTasks = a.tasks;
    log(`Ansible no-change run, ${ANSIBLE_RUNS} runs (load ${load().join(' ')})`);
    const runs = [];
    for (let i = 0; i < ANSIBLE_RUNS; i++) runs.push(await ansibleRun(a));
    results.ansible = {
      version: a.version,
      wallS: stats(runs.map((r) => r.wallMs / 1000)), cpuS: stats(runs.map((r) => r.cpuS)), rssMB: stats(runs.map((r) => r.rssMB)),
      okTasksPerHost: runs[0].tasks, load: load(),
    };
    save();
  }

  // 4b. Converge from fresh hosts, ours and Ansible's, of the same work: bench/scale.yml (common,
  // firewall, monitoring collector) on the four site hosts. That set translates to Ansible whole;
  // the full site does not (its SQL is only read on the Ansible side, and no handler runs there).
  if (ONLY.length ? ONLY.includes('ansible-converge') : !flag('skip-converge') && !flag('skip-ansible')) {
    const ours = [];
    const theirs = [];
    for (let i = 0; i < CONVERGE_RUNS; i++) {
      for (const h of SITE_HOSTS) cli(['lab', 'restore', h, 'fresh', '--name', NAME]);
      const r = await measure(process.execPath, [path.join(root, 'bin/provision.mjs'), '--inventory', 'bench', '--playbook', 'bench/scale.yml', '--json', ...(CONVERGE_HOSTS.length ? ['--limit', CONVERGE_HOSTS.join(',')] : [])]);
      if (r.code !== 2) throw new Error(`our converge of bench/scale.yml exited ${r.code}: ${JSON.stringify(recapOf(r.stdout).hosts)}`);
      ours.push(r);
      log(`converge of bench/scale.yml on fresh hosts, ours ${i + 1}: ${(r.wallMs / 1000).toFixed(1)} s`);
      for (const h of SITE_HOSTS) cli(['lab', 'restore', h, 'fresh', '--name', NAME]);
      const a = prepareAnsible('bench/scale.yml');
      const t = await ansibleRun(a, true, CONVERGE_HOSTS);
      theirs.push(t);
      log(`converge of bench/scale.yml on fresh hosts, Ansible ${i + 1}: ${(t.wallMs / 1000).toFixed(1)} s, changed ${JSON.stringify(t.changed)}`);
    }
    const fig = (runs) => ({ wallS: stats(runs.map((r) => r.wallMs / 1000)), cpuS: stats(runs.map((r) => r.cpuS)), rssMB: stats(runs.map((r) => r.rssMB)) });
    results.lightConverge = { playbook: 'bench/scale.yml', hosts: CONVERGE_HOSTS.length ? CONVERGE_HOSTS : SITE_HOSTS, ours: fig(ours), ansible: { ...fig(theirs), changedPerHost: theirs[0].changed }, load: load() };
    save();
    // Back to our converged site for what follows.
    for (let i = 0; i < 3 && cli(['--inventory', 'bench', '--json'], { allowFail: true }).status !== 0; i++);
  }

  // 5. scale.
  if (SCALE.length && part('scale', 'skip-scale')) {
    labUp(maxScale);
    results.scale = {};
    for (const n of SCALE) {
      const inv = `bench-scale-${n}`;
      // Converge the hosts this size adds (a no-op for those converged before), then measure.
      const c = cli(['--inventory', inv, '--playbook', 'bench/scale.yml', '--json'], { allowFail: true });
      if (![0, 2].includes(c.status)) throw new Error(`${inv}: converge exited ${c.status}`);
      log(`scale ${n} hosts: no-change runs and floor, interleaved (load ${load().join(' ')})`);
      const floorCfg = floorConfig(`scale-${n}`, Array.from({ length: n }, (_, i) => ({ name: `node-${String(i + 1).padStart(3, '0')}`, address: `${SUBNET}.${101 + i}` })));
      const ours = [];
      const floorRuns = [];
      const busy = [];
      for (let i = 0; i < RUNS; i++) {
        const b0 = machineBusyS();
        ours.push(await ourNoChange(inv, 'bench/scale.yml', 1));
        busy.push(machineBusyS() - b0);
        const f = await measure(process.execPath, [path.join(root, 'bench/floor.mjs'), floorCfg]);
        if (f.code !== 0) throw new Error(`floor of ${n} hosts failed: ${f.stderr}`);
        floorRuns.push(f);
      }
      const pick = (k) => stats(ours.map((o) => o[k].median));
      results.scale[n] = {
        wallS: pick('wallS'), engineS: pick('engineS'), cpuS: pick('cpuS'), rssMB: pick('rssMB'), roundTripsPerHost: pick('roundTripsPerHost'),
        phasesMs: Object.fromEntries(['startup', 'connect', 'facts', 'read'].map((k) => [k, stats(ours.map((o) => o.phasesMs[k].median))])),
        // All cores, all processes, during our run: the lab's hosts run on this machine's cores too.
        machineCpuS: stats(busy.map((x) => round(x))),
        floor: { wallS: stats(floorRuns.map((r) => r.wallMs / 1000)), cpuS: stats(floorRuns.map((r) => r.cpuS)), rssMB: stats(floorRuns.map((r) => r.rssMB)) },
        load: load(),
      };
      results.scale[n].oursOverFloor = round(results.scale[n].wallS.median / results.scale[n].floor.wallS.median);
      save();
    }
  }

  results.ratios = {
    oursOverFloor: round(results.noChange.wallS.median / results.floor.wallS.median),
    ansibleOverOurs: results.ansible ? round(results.ansible.wallS.median / results.noChange.wallS.median) : undefined,
    convergeAnsibleOverOurs: results.lightConverge ? round(results.lightConverge.ansible.wallS.median / results.lightConverge.ours.wallS.median) : undefined,
    scaleMaxOverSite: results.scale?.[maxScale] ? round(results.scale[maxScale].wallS.median / results.noChange.wallS.median) : undefined,
  };
  results.loadAtEnd = load();
  save();
  printTable(results);
}

function printTable(r) {
  const f = (s, unit = '') => (s ? `${s.median}${unit} (${s.min}–${s.max})` : '-');
  const rows = [
    ['converge from fresh (4 site hosts)', f(r.converge?.wallS, ' s'), f(r.converge?.cpuS, ' s'), f(r.converge?.rssMB, ' MB'), ''],
    ['no-change run (4 site hosts)', f(r.noChange.wallS, ' s'), f(r.noChange.cpuS, ' s'), f(r.noChange.rssMB, ' MB'), String(r.noChange.roundTripsPerHost.median)],
    ['floor: one batched script per host', f(r.floor.wallS, ' s'), f(r.floor.cpuS, ' s'), f(r.floor.rssMB, ' MB'), '1'],
    ['Ansible no-change run', f(r.ansible?.wallS, ' s'), f(r.ansible?.cpuS, ' s'), f(r.ansible?.rssMB, ' MB'), ''],
    ['converge of bench/scale.yml from fresh (4 site hosts), ours', f(r.lightConverge?.ours.wallS, ' s'), f(r.lightConverge?.ours.cpuS, ' s'), f(r.lightConverge?.ours.rssMB, ' MB'), ''],
    ['the same converge, Ansible', f(r.lightConverge?.ansible.wallS, ' s'), f(r.lightConverge?.ansible.cpuS, ' s'), f(r.lightConverge?.ansible.rssMB, ' MB'), ''],
    ...Object.entries(r.scale ?? {}).flatMap(([n, s]) => [
      [`no-change, bench/scale.yml, ${n} hosts`, f(s.wallS, ' s'), f(s.cpuS, ' s'), f(s.rssMB, ' MB'), String(s.roundTripsPerHost.median)],
      ...(s.floor ? [[`floor, ${n} hosts`, f(s.floor.wallS, ' s'), f(s.floor.cpuS, ' s'), f(s.floor.rssMB, ' MB'), '1']] : []),
    ]),
  ];
  const head = ['', 'wall: median (min–max)', 'controller CPU', 'controller peak RSS', 'round trips/host'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i].length)));
  const line = (cells) => '| ' + cells.map((c, i) => c.padEnd(w[i])).join(' | ') + ' |';
  const out = [line(head), '|' + w.map((x) => '-'.repeat(x + 2)).join('|') + '|', ...rows.map(line)];
  out.push('', `ours / floor: ${r.ratios.oursOverFloor}×   Ansible / ours: ${r.ratios.ansibleOverOurs ?? '-'}× (no change), ${r.ratios.convergeAnsibleOverOurs ?? '-'}× (converge)   ${SCALE.length ? `${Math.max(...SCALE)} hosts / site: ${r.ratios.scaleMaxOverSite}×` : ''}`);
  for (const [n, s] of Object.entries(r.scale ?? {})) {
    if (s.machineCpuS) out.push(`${n} hosts: ours / floor ${s.oursOverFloor}×; the whole machine (controller, lab hosts, background) spent ${s.machineCpuS.median} s of CPU per run on ${r.machine.nproc} cores`);
  }
  const ph = r.noChange?.phasesMs;
  if (ph) out.push(`no-change run, where the time goes (median ms; slowest host): process start to run ${ph.startup.median}, connect ${ph.connect.median}, facts ${ph.facts.median}, state read ${ph.read.median}`);
  out.push(`machine: ${r.machine.nproc} cores (${r.machine.cpu}), ${r.machine.memoryGB} GB, Linux ${r.machine.kernel}, Node ${r.machine.node}; load ${r.machine.loadAtStart.join(' ')} at start, ${r.loadAtEnd.join(' ')} at end`);
  process.stdout.write(out.join('\n') + '\n');
}

try {
  await main();
} catch (err) {
  log(`error: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
  if (!flag('keep')) {
    log(`lab down --name ${NAME}`);
    cli(['lab', 'down', '--name', NAME], { allowFail: true });
  }
}
