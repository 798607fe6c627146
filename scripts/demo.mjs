#!/usr/bin/env node
// The main job on the built-in lab: bring up real hosts on this machine, converge the reference
// site onto them, prove it answers, and say where to look. Needs root on Debian/Ubuntu.
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
process.chdir(root);
const bin = path.join(root, 'bin/provision.cjs');

function run(title, args) {
  process.stdout.write(`\n==> ${title}\n`);
  const r = spawnSync(process.execPath, [bin, ...args], { stdio: 'inherit' });
  return r.status ?? 1;
}

if (process.platform !== 'linux' || process.getuid?.() !== 0) {
  console.error('provision demo: the lab needs root on Linux (systemd-nspawn, network namespaces)');
  process.exit(1);
}
if (run('lab up: real Debian 12 hosts on this machine', ['lab', 'up']) !== 0) process.exit(1);
const first = run('converge the site (first run: installs and configures everything)', ['--inventory', 'lab']);
if (first !== 0 && first !== 2) process.exit(first);
const second = run('converge again: nothing left to change', ['--inventory', 'lab']);

const client = ['ip', 'netns', 'exec', 'provlab-client'];
const roots = spawnSync('curl', ['-sf', '--cacert', '/var/lib/provision-lab/default/pebble/ca.pem', 'https://10.77.0.1:15000/roots/0', '-o', '/tmp/provision-lab-root.pem']);
process.stdout.write('\n==> the site, from a client outside the hosts (certificate checked against the lab CA)\n');
const curl = spawnSync(client[0], [...client.slice(1), 'curl', '-sS', '--resolve', 'www.foobar.com:443:10.77.0.10', '--cacert', '/tmp/provision-lab-root.pem', 'https://www.foobar.com/'], { encoding: 'utf8' });
process.stdout.write((curl.stdout || curl.stderr || '(no answer)') + '\n');
process.stdout.write(`
Where to look:
  site        ip netns exec provlab-client curl --resolve www.foobar.com:443:10.77.0.10 --cacert /tmp/provision-lab-root.pem https://www.foobar.com/
  prometheus  curl http://10.77.0.20:9090/api/v1/targets   (from this machine: the admin side)
  a host      npx provision lab exec web-01 -- systemctl status nginx
  dry run     npx provision --inventory lab --check --diff
  status      npx provision lab status
  stop        npx provision lab down
`);
process.exitCode = roots.status === 0 && curl.status === 0 && second === 0 ? 0 : 1;
