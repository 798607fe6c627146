/**
 * Releases from a git repository, fetched on the web host (instance d4git: web-01 deploys, mon-01 is
 * the git server: a `git` user with git-shell, the deploy key's public half, a bare repository with
 * two commits). Proves the source path (ref → commit → releases/<commit>, as the app user), the
 * pinned host key (a wrong pin refused, nothing switched), idempotence, and that the key is never
 * left on the host nor shown.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'd4git';
const PREFIX = '10.111.0';
const GIT_HOST = `${PREFIX}.20`;
let dir: string;
let inv: string;
let play: string;
let key: string;
let hostKeyLine: string;
const commits: string[] = [];

/** The app: answers /health, and / with the VERSION file of its release. */
const SERVER = `require('http').createServer((q, s) => s.end(q.url === '/health' ? 'ok' : require('fs').readFileSync(__dirname + '/VERSION'))).listen(Number(process.env.PORT), process.env.HOST);\n`;

function sh(host: string, cmd: string) {
  return hostExec(host, ['sh', '-c', cmd], NAME, { timeoutMs: 300_000 });
}

async function ok(host: string, cmd: string): Promise<string> {
  const r = await sh(host, cmd);
  expect(r.code, `${cmd}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

const currentOn = async () => (await ok('web-01', 'readlink /opt/app/current')).trim().replace(/^releases\//, '');

function inventory(hostKey: string, extra = ''): string {
  const file = writeInventory(dir, NAME, PREFIX, {
    hosts: `  web-01: { address: ${PREFIX}.11, groups: [webservers] }\n`,
    tail: `vars:
  domain: www.foobar.com
  mysql_app_password: !secret mysql_app_password
  app_packages: [nodejs]
  app_repository: git@${GIT_HOST}:app.git
  app_ref: v1
  app_deploy_key_file: ${key}
  app_repository_host_key: "${hostKey}"
  deploy_health_timeout: 20
${extra}`,
  });
  writeFileSync(file.replace(/\.yml$/, '.secrets.yml'), 'mysql_app_password: not-used-by-this-app-0123\n', { mode: 0o600 });
  return file;
}

const deploy = (i: string, args: string[]): Promise<CliResult> => provision(['deploy', '-i', i, '--json', ...args], { timeoutMs: 300_000 });

/** Nothing of the deploy key may be shown. */
function expectNoKey(r: CliResult) {
  const body = readFileSync(key, 'utf8').split('\n')[2]!;
  expect(body.length).toBeGreaterThan(20);
  expect(r.stdout + r.stderr).not.toContain(body);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-deploy-git-'));
  key = path.join(dir, 'deploy_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy', '-f', key]);
  // The repository: examples' shape, two commits (v1 tagged), made on the control machine.
  const src = path.join(dir, 'src');
  mkdirSync(src);
  const git = (...a: string[]) => execFileSync('git', ['-C', src, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...a], { encoding: 'utf8' }).trim();
  git('init', '-q', '-b', 'main');
  for (const v of ['v1', 'v2']) {
    writeFileSync(path.join(src, 'server.js'), SERVER);
    writeFileSync(path.join(src, 'VERSION'), `${v}\n`);
    git('add', '.');
    git('commit', '-q', '-m', v);
    if (v === 'v1') git('tag', 'v1');
    commits.push(git('rev-parse', 'HEAD'));
  }

  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['web-01', 'mon-01'], pebble: false });
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  await ok(
    'mon-01',
    `set -e; DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -qy install --no-install-recommends git >/dev/null
id git >/dev/null 2>&1 || useradd -m -s /usr/bin/git-shell git
install -d -o git -g git -m 0700 /home/git/.ssh
printf '%s\\n' '${pub}' > /home/git/.ssh/authorized_keys; chown git:git /home/git/.ssh/authorized_keys; chmod 600 /home/git/.ssh/authorized_keys
rm -rf /home/git/app.git; git init -q --bare -b main /home/git/app.git`,
  );
  // Pushed by root over the lab's SSH, then handed to the git user.
  const p = labPaths(NAME);
  execFileSync('git', ['-C', src, 'push', '-q', `root@${GIT_HOST}:/home/git/app.git`, 'main', 'v1'], {
    env: { ...process.env, GIT_SSH_COMMAND: `ssh -i ${p.sshKey} -o UserKnownHostsFile=${p.knownHosts} -o StrictHostKeyChecking=yes -o BatchMode=yes` },
  });
  await ok('mon-01', 'chown -R git:git /home/git/app.git');
  hostKeyLine = `${GIT_HOST} ${(await ok('mon-01', 'cut -d" " -f1,2 /etc/ssh/ssh_host_ed25519_key.pub')).trim()}`;

  inv = inventory(hostKeyLine);
  play = writePlaybook(dir, `- name: web\n  hosts: webservers\n  roles: [nginx, app]\n`);
  const r = await provision(['-i', inv, '-p', play, '--json'], { timeoutMs: 900_000 });
  expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(2);
  expectNoKey(r);
}, 1_200_000);

afterAll(async () => {
  await labDown(NAME);
});

describe('deploy from a git repository', () => {
  it('the converge fetched app_ref (tag v1) on the host as the app user: releases/<full commit>, no git data in it, the key gone', async () => {
    expect(await currentOn()).toBe(commits[0]);
    const out = await ok(
      'web-01',
      `cat /opt/app/current/VERSION; ls -A /opt/app/current | tr '\\n' ' '; echo; stat -c '%U %a' /opt/app/repo.git /opt/app/current/server.js; ls -A /opt/app | tr '\\n' ' '`,
    );
    const [version, inRelease, repoMode, fileMode, appDir] = out.split('\n');
    expect(version).toBe('v1');
    // The commit's tree and the completion marker: nothing of git.
    expect(inRelease).toBe('.provision-release VERSION server.js ');
    expect([repoMode, fileMode]).toEqual(['app 750', 'root 644']);
    expect(appDir).not.toContain('.git-ssh');
    expect(await ok('web-01', `node -e "require('http').get('http://127.0.0.1:' + process.argv[1], (r) => r.pipe(process.stdout))" $(sed -n 's/^PORT=//p' /opt/app/shared/env | tr -d '"')`)).toContain('v1');
  });

  it('--check names the commit a branch resolves to and the host it goes to; nothing changes', async () => {
    const r = await deploy(inv, ['--check', '--release', 'main']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toContain(`release main is commit ${commits[1]}`);
    expect(r.stdout).toContain(`web-01: deploy main ${commits[0]} → ${commits[1]} (batch 1, release sent)`);
    expect(await currentOn()).toBe(commits[0]);
    expect(await ok('web-01', 'ls -A /opt/app/releases')).not.toContain(commits[1]!);
  });

  it('a deploy of the branch switches to its commit; the same commit again changes nothing', async () => {
    const r = await deploy(inv, ['--release', 'main']);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expectNoKey(r);
    expect(await currentOn()).toBe(commits[1]);
    expect(await ok('web-01', 'cat /opt/app/current/VERSION; ls -A /opt/app')).toMatch(/^v2\n(?![\s\S]*\.git-ssh)/);
    const again = await deploy(inv, ['--release', 'main']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toContain(`web-01: runs ${commits[1]} already, unchanged`);
    // A full commit needs no lookup: the one installed (v1) is switched back to without a fetch.
    const byCommit = await deploy(inv, ['--release', commits[0]!]);
    expect(byCommit.code, byCommit.stdout + byCommit.stderr).toBe(2);
    expect(byCommit.stdout).toContain('release already there');
    expect(await currentOn()).toBe(commits[0]);
  }, 400_000);

  it('Node.js from an apt repository with a key of another fingerprint: the run stops, nothing written to apt on the host', async () => {
    const home = mkdtempSync(path.join(tmpdir(), 'provision-gpg-'));
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Repo <r@example.com>', 'ed25519', 'sign', 'never']);
    const keyFile = path.join(dir, 'repo.asc');
    writeFileSync(keyFile, execFileSync('gpg', ['--homedir', home, '--batch', '--armor', '--export']));
    const wrongPin = inventory(hostKeyLine, `  app_nodejs_source: nodesource\n  app_nodejs_key_file: ${keyFile}\n  app_nodejs_key_fingerprint: ${'AB12'.repeat(10)}\n`);
    const r = await provision(['-i', wrongPin, '-p', play], { timeoutMs: 600_000 });
    expect([1, 4], r.stdout.slice(-2000) + r.stderr).toContain(r.code);
    expect(r.stdout + r.stderr).toMatch(/app_nodejs_key_file: .*repo\.asc has fingerprint [0-9A-F]{40}, not (AB12){10} \(app_nodejs_key_fingerprint\): not trusted, nothing written/);
    expect(await ok('web-01', 'ls /etc/apt/sources.list.d /etc/apt/keyrings /etc/apt/preferences.d 2>/dev/null; true')).not.toContain('provision-nodejs');
  }, 700_000);

  it('a git server whose host key is not the pinned one is refused: exit 1, one clear line, nothing fetched or switched', async () => {
    const before = await currentOn();
    const webKey = (await ok('web-01', 'cut -d" " -f1,2 /etc/ssh/ssh_host_ed25519_key.pub')).trim();
    const wrong = inventory(`${GIT_HOST} ${webKey}`);
    // By ref: the ls-remote on the first host is refused.
    const byRef = await deploy(wrong, ['--release', 'main']);
    expect(byRef.code, byRef.stdout + byRef.stderr).toBe(1);
    expect(byRef.stderr).toMatch(/web-01: the git server of git@10\.111\.0\.20:app\.git did not present the host key pinned in app_repository_host_key/);
    // By commit (not on the host): the fetch itself is refused.
    await ok('web-01', `rm -rf /opt/app/releases/${commits[1]}`);
    const byCommit = await deploy(wrong, ['--release', commits[1]!]);
    expect(byCommit.code, byCommit.stdout + byCommit.stderr).toBe(1);
    expect(byCommit.stderr).toMatch(/did not present the host key pinned/);
    expectNoKey(byCommit);
    expect(await currentOn()).toBe(before);
    expect(await ok('web-01', 'ls -A /opt/app /opt/app/releases')).not.toMatch(/\.git-ssh|\.incoming/);
  }, 400_000);
});
