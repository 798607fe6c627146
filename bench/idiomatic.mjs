// The idiomatic Ansible side of `npm run bench` (bench/ansible-idiomatic/: what an Ansible expert
// writes for the reference site) and the check that it builds the same site as ours: the same
// packages, the same content (modulo comments) and modes of every file our site writes, the same
// links and folders, the same units running and enabled, the same ufw rules and policy, the same
// MySQL accounts, grants and replication state.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { measure, root, sh, tmp } from './lib.mjs';

export const IDIOMATIC_DIR = path.join(root, 'bench/ansible-idiomatic');

/**
 * What Ansible itself needs on a managed host and our tool does not: the apt module installs
 * python3-apt when it is missing, community.mysql needs PyMySQL. Their dependencies come along.
 * Packages only on the Ansible side and in this list do not count against equivalence.
 */
export const ANSIBLE_OWN_PACKAGES = ['python3-apt', 'python-apt-common', 'distro-info-data', 'python3-pymysql'];

/** The Ansible inventory of the site's lab hosts: the same groups and vars as inventory/lab.yml. */
export function writeIdiomaticInventory(file, { subnet, labDir }) {
  const at = (octet) => `{ ansible_host: ${subnet}.${octet} }`;
  writeFileSync(file, [
    '# Written by scripts/bench.mjs: the lab\'s site hosts for bench/ansible-idiomatic (as inventory/lab.yml).',
    'all:',
    '  vars:',
    '    ansible_user: root',
    `    ansible_ssh_private_key_file: ${labDir}/ssh/id_ed25519`,
    `    ansible_ssh_common_args: -o UserKnownHostsFile=${labDir}/ssh/known_hosts -o StrictHostKeyChecking=yes`,
    '    domain: www.foobar.com',
    `    admin_cidrs: [${subnet}.1/32]`,
    `    monitoring_cidrs: [${subnet}.20/32]`,
    `    acme_directory_url: https://${subnet}.1:14000/dir`,
    `    acme_ca_bundle: ${labDir}/pebble/ca.pem`,
    '    acme_email: ops@foobar.com',
    // As inventory/bench.yml (scripts/bench.mjs): the bench times both tools, not an AIDE baseline,
    // chkrootkit or the day's security updates; both sides' database certificates name db.bench.internal.
    '    aide: false',
    '    rootkit_check: false',
    '    security_updates_on_converge: false',
    '    site_name: bench',
    '  children:',
    `    loadbalancers: { hosts: { lb-01: ${at(10)} } }`,
    `    webservers: { hosts: { web-01: ${at(11)}, web-02: ${at(12)} } }`,
    '    db_primary: { hosts: { web-01: {} } }',
    '    db_replica: { hosts: { web-02: {} } }',
    '    databases: { children: { db_primary: {}, db_replica: {} } }',
    `    monitoring: { hosts: { mon-01: ${at(20)} } }`,
    '',
  ].join('\n'));
  return file;
}

let runNo = 0;
/**
 * One ansible-playbook run of the idiomatic site, measured as a whole process. The JSON callback
 * gives every task's duration (start to end, all hosts) and the recap.
 * `factCache`: a directory for the jsonfile fact cache with smart gathering (facts gathered once,
 * then read from the cache), or false (facts gathered in every run).
 */
export async function runIdiomatic({ hosts, secrets, check = false, factCache = false, limit = [] }) {
  const env = {
    ANSIBLE_CONFIG: path.join(IDIOMATIC_DIR, 'ansible.cfg'),
    ANSIBLE_STDOUT_CALLBACK: 'ansible.posix.json',
    // A fresh ControlPath dir per run: no SSH master survives from one run into the next.
    ANSIBLE_SSH_CONTROL_PATH_DIR: path.join(tmp(), `cp-idiomatic-${++runNo}`),
    ANSIBLE_NOCOLOR: '1',
    ...(factCache
      ? { ANSIBLE_GATHERING: 'smart', ANSIBLE_CACHE_PLUGIN: 'jsonfile', ANSIBLE_CACHE_PLUGIN_CONNECTION: factCache, ANSIBLE_CACHE_PLUGIN_TIMEOUT: '86400' }
      : {}),
  };
  const argv = ['-i', hosts, '-e', `@${secrets}`, ...(check ? ['--check', '--diff'] : []), ...(limit.length ? ['--limit', limit.join(',')] : []), 'site.yml'];
  const r = await measure('ansible-playbook', argv, { cwd: IDIOMATIC_DIR, env });
  let out;
  try {
    out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  } catch {
    throw new Error(`ansible-playbook (exit ${r.code}) printed no JSON: ${(r.stderr || r.stdout).slice(-2000)}`);
  }
  const tasks = [];
  const changedTasks = {};
  const failures = [];
  for (const play of out.plays ?? []) {
    for (const t of play.tasks ?? []) {
      const d = t.task.duration;
      tasks.push({ play: play.play.name, task: t.task.name, ms: d?.end && d?.start ? Date.parse(d.end) - Date.parse(d.start) : NaN });
      for (const [h, res] of Object.entries(t.hosts ?? {})) {
        if (res.changed) (changedTasks[h] ??= []).push(t.task.name);
        if (res.failed || res.unreachable) failures.push(`${h}: ${t.task.name}: ${String(res.msg ?? res.stderr ?? '').slice(0, 500)}`);
      }
    }
  }
  const stats = out.stats ?? {};
  return {
    wallMs: r.wallMs, cpuS: r.cpuS, rssMB: r.rssMB, code: r.code, tasks, changedTasks, failures, stats,
    changed: Object.fromEntries(Object.entries(stats).map(([h, s]) => [h, s.changed])),
    ok: r.code === 0 && Object.values(stats).every((s) => !s.failures && !s.unreachable),
  };
}

// ------------------------------------------------------------------------------------------- equivalence

/** What the site manages per host, from our expanded task list (bench/site-files.ts). */
export function siteManaged(inventory, playbook = 'playbooks/site.yml') {
  return JSON.parse(sh('npx', ['tsx', 'bench/site-files.ts', inventory, playbook]).stdout);
}

const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A script that prints, in sections, everything the equivalence check compares on one host. */
export function stateScript(m) {
  return [
    'echo @@packages',
    "dpkg-query -W -f '${db:Status-Abbrev}${Package}\\n' | sed -n 's/^ii *//p' | sort",
    'echo @@ufw',
    "grep -h '^### tuple ###' /etc/ufw/user.rules /etc/ufw/user6.rules 2>/dev/null | sort",
    "grep -hE '^(ENABLED|LOGLEVEL)=' /etc/ufw/ufw.conf 2>/dev/null",
    "grep -hE '^DEFAULT_(INPUT|OUTPUT|FORWARD)_POLICY=' /etc/default/ufw 2>/dev/null",
    ...m.files.flatMap((f) => [
      `echo ${q(`@@file ${f}`)}`,
      // Comments (# and //) and blank lines do not count: each side names itself in them.
      `if [ -f ${q(f)} ]; then stat -c '%a %U:%G' ${q(f)}; grep -vE '^[[:space:]]*(#|//)' ${q(f)} | grep -vE '^[[:space:]]*$'; else echo absent; fi`,
    ]),
    ...m.paths.flatMap((p) => [
      `echo ${q(`@@path ${p}`)}`,
      `if [ -L ${q(p)} ]; then echo "link $(readlink ${q(p)})"; elif [ -d ${q(p)} ]; then stat -c 'dir %a %U:%G' ${q(p)}; elif [ -e ${q(p)} ]; then stat -c 'file %a %U:%G' ${q(p)}; else echo absent; fi`,
    ]),
    ...m.units.flatMap((u) => [`echo ${q(`@@unit ${u}`)}`, `systemctl is-active ${q(u)}; systemctl is-enabled ${q(u)} 2>/dev/null || true`]),
    'echo @@mysql',
    'if command -v mysql >/dev/null 2>&1 && [ -S /run/mysqld/mysqld.sock ]; then',
    `  for u in $(mysql -N -e "SELECT CONCAT(QUOTE(user), '@', QUOTE(host)) FROM mysql.user"); do mysql -N -e "SHOW GRANTS FOR $u"; done | sed -E "s/(PASSWORD|AS) '[^']*'/\\1 '<hash>'/g" | sort`,
    "  mysql -e 'SHOW SLAVE STATUS\\G' | grep -E '^ *(Master_Host|Master_User|Using_Gtid|Slave_IO_Running|Slave_SQL_Running):' | sed 's/^ *//'",
    'fi',
  ].join('\n');
}

/** Runs the state script on every host (ssh with the lab's key and known_hosts), parsed by section. */
export function collectState(managed, { addresses, labDir }) {
  const state = {};
  for (const [host, m] of Object.entries(managed)) {
    const r = sh('ssh', [
      '-i', `${labDir}/ssh/id_ed25519`, '-o', 'IdentitiesOnly=yes', '-o', `UserKnownHostsFile=${labDir}/ssh/known_hosts`,
      '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `root@${addresses[host]}`, 'sh -s',
    ], { input: stateScript(m) });
    const sections = {};
    let cur;
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('@@')) sections[(cur = line.slice(2))] = [];
      else if (cur !== undefined && line !== '') sections[cur].push(line);
    }
    state[host] = sections;
  }
  return state;
}

/**
 * The differences between two hosts' states (ours, theirs), secrets masked: nothing here may carry
 * a password into bench/results.json. Packages only on their side that Ansible itself needs are
 * listed apart and do not count.
 */
export function compareStates(ours, theirs, secretValues = []) {
  const mask = (s) => secretValues.reduce((acc, v) => (v ? acc.split(v).join('********') : acc), s);
  const report = {};
  let equivalent = true;
  for (const host of Object.keys(ours)) {
    const a = ours[host];
    const b = theirs[host] ?? {};
    const pa = new Set(a.packages ?? []);
    const pb = new Set(b.packages ?? []);
    const onlyOurs = [...pa].filter((p) => !pb.has(p));
    const onlyTheirs = [...pb].filter((p) => !pa.has(p));
    const ansibleOwn = onlyTheirs.filter((p) => ANSIBLE_OWN_PACKAGES.includes(p));
    const differs = [];
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (key === 'packages') continue;
      const x = (a[key] ?? []).join('\n');
      const y = (b[key] ?? []).join('\n');
      if (x === y) continue;
      const xs = new Set(a[key] ?? []);
      const ys = new Set(b[key] ?? []);
      differs.push({
        what: key,
        oursOnly: [...xs].filter((l) => !ys.has(l)).map(mask),
        theirsOnly: [...ys].filter((l) => !xs.has(l)).map(mask),
      });
    }
    const packages = { oursOnly: onlyOurs, theirsOnly: onlyTheirs.filter((p) => !ansibleOwn.includes(p)), ansibleOwn };
    const same = !packages.oursOnly.length && !packages.theirsOnly.length && !differs.length;
    equivalent &&= same;
    report[host] = {
      same,
      compared: Object.keys(a).length - 1,
      packages: { count: pa.size, ...packages },
      differs,
    };
  }
  return { equivalent, hosts: report };
}

/** name: "value" lines of a secrets file (the lab's), for masking. */
export function secretValuesOf(file) {
  if (!existsSync(file)) return [];
  return [...readFileSync(file, 'utf8').matchAll(/^[A-Za-z0-9_]+:\s*"?([^"\n]*)"?$/gm)].map((m) => m[1]).filter((v) => v.length >= 4);
}

export function ensureDir(d) {
  mkdirSync(d, { recursive: true });
  return d;
}

// ------------------------------------------------------------------------------------------- command line
// The equivalence check on its own, for hosts converged by hand (scripts/bench.mjs runs it inside its
// idiomatic part):
//   node bench/idiomatic.mjs state INVENTORY NAME SUBNET OUT.json   what the site manages, as each host has it now
//   node bench/idiomatic.mjs compare OURS.json THEIRS.json           the differences (exit 1 when there are some)
// INVENTORY: our inventory of those hosts (e.g. bench), NAME and SUBNET (e.g. an6 10.122.0) the lab instance.
async function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === 'state') {
    const [inventory, name, subnet, out] = rest;
    const addresses = { 'lb-01': `${subnet}.10`, 'web-01': `${subnet}.11`, 'web-02': `${subnet}.12`, 'mon-01': `${subnet}.20` };
    const state = collectState(siteManaged(inventory), { addresses, labDir: `/var/lib/provision-lab/${name}` });
    writeFileSync(out, JSON.stringify(state, null, 1) + '\n', { mode: 0o600 });
    return 0;
  }
  if (cmd === 'compare') {
    const [oursFile, theirsFile, secrets = path.join(root, 'inventory/bench.secrets.yml')] = rest;
    const report = compareStates(JSON.parse(readFileSync(oursFile, 'utf8')), JSON.parse(readFileSync(theirsFile, 'utf8')), secretValuesOf(secrets));
    process.stdout.write(JSON.stringify(report, null, 1) + '\n');
    return report.equivalent ? 0 : 1;
  }
  process.stderr.write('usage: node bench/idiomatic.mjs state INVENTORY NAME SUBNET OUT.json | compare OURS.json THEIRS.json [SECRETS]\n');
  return 4;
}
if (process.argv[1] && path.resolve(process.argv[1]) === path.join(root, 'bench/idiomatic.mjs')) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
  });
}
