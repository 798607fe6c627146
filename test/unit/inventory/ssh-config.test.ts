import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../../../src/inventory/index.js';
import { SshConfig, type SshHostConfig } from '../../../src/inventory/ssh-config.js';

/*
 * ~/.ssh/config: each row's options are checked against OpenSSH's own reading of the same file,
 * `ssh -G HOST -F FILE` (openssh-client, which prints the options it would use without connecting).
 */
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-ssh-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const ssh = ['/usr/bin/ssh', '/bin/ssh'].find((p) => existsSync(p));

mkdirSync(path.join(tmp, 'conf.d'), { recursive: true });
writeFileSync(path.join(tmp, 'inc.conf'), 'User from-include\nHost zz\n  Port 9\n');
writeFileSync(path.join(tmp, 'conf.d', 'a.conf'), 'Host g1\n  User ga\n');
writeFileSync(path.join(tmp, 'conf.d', 'b.conf'), 'Host g1\n  User gb\n  Port 2201\n');

/** [what, config text, hosts to look up] */
const rows: Array<[string, string, string[]]> = [
  ['a Host block, then defaults: the first value obtained wins', 'Host web1\n  User deploy\n  Port 2222\nHost *\n  User other\n  Port 22\n', ['web1', 'web2']],
  ['wildcards and a negated pattern', 'Host *.prod !db*.prod\n  User produser\nHost *\n  User fallback\n', ['web.prod', 'db1.prod', 'x.dev']],
  ['? matches one character; %h in HostName', 'Host web?\n  HostName %h.example.com\n', ['web1', 'web10']],
  ['patterns match the name as given, case and all; HostName is lowercased', 'Host WEB1\n  User upper\nHost web*\n  User lowpat\n', ['WEB1', 'web1', 'Web1']],
  ['Key=Value, quotes, comments', '# a comment\nHost=a1 # trailing comment\n  HostName = FOO.%h.Example\n  Port=2200\n  "User" "my user"\n\n', ['a1', 'a2']],
  [
    'IdentityFile accumulates; IdentitiesOnly; UserKnownHostsFile: the first line, all its files',
    'Host k1\n  IdentityFile ~/.ssh/id_%h\n  IdentitiesOnly yes\n  UserKnownHostsFile ~/.ssh/kh1 /tmp/kh2\nHost *\n  IdentityFile /keys/default\n  UserKnownHostsFile /other\n',
    ['k1', 'k2'],
  ],
  ['ProxyJump: the first wins, none says none', 'Host j1\n  ProxyJump ops@bastion:2022\nHost j2\n  ProxyJump none\nHost *\n  ProxyJump default-bastion\n', ['j1', 'j2', 'j3']],
  ['ProxyCommand before ProxyJump wins', 'Host c1\n  ProxyCommand ssh -W %h:%p -q bastion\n  ProxyJump j1\n', ['c1']],
  [
    'Include inside a Host block: a Host line in the included file lasts to its end',
    `Host inc1\n  Include ${path.join(tmp, 'inc.conf')}\n  User after-include\nHost *\n  Port 2200\n`,
    ['inc1', 'zz'],
  ],
  ['Include with a glob: files in name order', `Include ${path.join(tmp, 'conf.d')}/*.conf\nHost *\n  User last\n`, ['g1', 'g2']],
  ['a Match block (not read here) that does not match for OpenSSH either', 'Match host nomatch\n  User matched\nHost *\n  User plain\n', ['m1']],
];

/** What `ssh -G` prints: option → values (identityfile repeats). */
function sshG(file: string, host: string): Map<string, string[]> {
  const out = execFileSync(ssh!, ['-G', '-F', file, host], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const m = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(' ');
    if (i < 0) continue;
    const [k, v] = [line.slice(0, i), line.slice(i + 1)];
    m.set(k, [...(m.get(k) ?? []), v]);
  }
  return m;
}

const expandTilde = (p: string) => (p.startsWith('~/') ? path.join(homedir(), p.slice(2)) : p);

/** Ours, in ssh -G's terms (its defaults where the config sets nothing). */
function asSshG(c: SshHostConfig, host: string) {
  return {
    hostname: c.hostName ?? host.toLowerCase(),
    user: c.user ?? userInfo().username,
    port: String(c.port ?? 22),
    identitiesonly: c.identitiesOnly ? 'yes' : 'no',
    userknownhostsfile: (c.userKnownHostsFiles ?? ['~/.ssh/known_hosts', '~/.ssh/known_hosts2']).map(expandTilde).join(' '),
    proxyjump: c.proxyCommand === undefined ? c.proxyJump : undefined,
    proxycommand: c.proxyCommand,
    ...(c.identityFiles.length ? { identityfile: c.identityFiles } : {}),
  };
}

describe.skipIf(!ssh)('ssh_config read as `ssh -G` reads it', () => {
  rows.forEach(([what, text, hosts], i) => {
    it.each(hosts)(`${what}: %s`, (host) => {
      const file = path.join(tmp, `config-${i}`);
      writeFileSync(file, text);
      const ours = asSshG(new SshConfig(file, homedir(), () => {}).lookup(host), host);
      const theirs = sshG(file, host);
      expect({
        hostname: theirs.get('hostname')![0],
        user: theirs.get('user')![0],
        port: theirs.get('port')![0],
        identitiesonly: theirs.get('identitiesonly')![0],
        userknownhostsfile: theirs.get('userknownhostsfile')![0],
        proxyjump: theirs.get('proxyjump')?.[0],
        proxycommand: theirs.get('proxycommand')?.[0],
        ...(ours.identityfile ? { identityfile: theirs.get('identityfile') } : {}),
      }).toEqual(ours);
    });
  });

  it('the table reads something (a table of empty configs could not fail)', () => {
    const file = path.join(tmp, 'config-0');
    expect(new SshConfig(file, homedir(), () => {}).lookup('web1')).toMatchObject({ user: 'deploy', port: 2222 });
  });
});

describe('ssh_config in the inventory: aliases, users, ports, keys, jumps; the inventory wins', () => {
  const home = path.join(tmp, 'home');
  mkdirSync(path.join(home, '.ssh'), { recursive: true });
  writeFileSync(path.join(home, '.ssh', 'id_web'), 'a key file that exists');
  writeFileSync(
    path.join(home, '.ssh', 'config'),
    `Host web1
  HostName 10.0.1.11
  User deploy
  Port 2222
  IdentityFile ~/.ssh/id_missing
  IdentityFile ~/.ssh/id_web
  IdentitiesOnly yes
  ProxyJump bastion
  UserKnownHostsFile ~/.ssh/known_hosts_prod
Host bastion
  HostName 203.0.113.10
  User jumper
  Port 2022
Match exec "true"
  User never
`,
  );
  const inventory = path.join(tmp, 'inv.yml');
  writeFileSync(
    inventory,
    `hosts:
  web1: { address: web1 }
  web2: { address: web1, user: admin, port: 22, identity_file: /keys/own, jump: ops@203.0.113.99 }
`,
  );

  it('read from ~/.ssh/config by default ($HOME of the environment)', () => {
    const inv = loadInventory(inventory, { env: { HOME: home } });
    const web1 = inv.hosts.get('web1')!;
    expect(web1.address).toBe('10.0.1.11');
    expect(web1.connection).toMatchObject({
      user: 'deploy',
      port: 2222,
      identityFile: path.join(home, '.ssh', 'id_web'), // the first IdentityFile that exists
      agent: undefined, // IdentitiesOnly
      jump: 'jumper@203.0.113.10:2022', // the jump's own alias resolved too
      knownHosts: path.join(home, '.ssh', 'known_hosts_prod'),
    });
    expect(inv.warnings).toEqual([`${path.join(home, '.ssh', 'config')}:14: ssh_config: Match blocks are not read by provision; its options are ignored`]);
  });

  it("the inventory's own settings win over ssh_config's", () => {
    const web2 = loadInventory(inventory, { env: { HOME: home } }).hosts.get('web2')!;
    expect(web2.address).toBe('10.0.1.11');
    expect(web2.connection).toMatchObject({ user: 'admin', port: 22, identityFile: '/keys/own', jump: 'ops@203.0.113.99' });
  });

  it('ssh_config: false reads none; a path reads that file', () => {
    writeFileSync(path.join(tmp, 'off.yml'), 'ssh_config: false\nhosts:\n  web1: { address: web1 }\n');
    expect(loadInventory(path.join(tmp, 'off.yml'), { env: { HOME: home } }).hosts.get('web1')!.address).toBe('web1');
    writeFileSync(path.join(tmp, 'alt.cfg'), 'Host web1\n  HostName 10.9.9.9\n');
    writeFileSync(path.join(tmp, 'alt.yml'), 'ssh_config: alt.cfg\nhosts:\n  web1: { address: web1 }\n');
    expect(loadInventory(path.join(tmp, 'alt.yml'), { env: { HOME: home } }).hosts.get('web1')!.address).toBe('10.9.9.9');
  });

  it('an Ansible inventory: -F in the ssh args chooses the file (none: no file)', () => {
    writeFileSync(path.join(tmp, 'hosts'), `web1\nweb9 ansible_ssh_common_args="-F none"\nweb8 ansible_host=web1 ansible_ssh_extra_args="-F ${path.join(tmp, 'alt.cfg')}"\n`);
    const inv = loadInventory(path.join(tmp, 'hosts'), { env: { HOME: home } });
    expect(inv.hosts.get('web1')!.address).toBe('10.0.1.11');
    expect(inv.hosts.get('web9')!.address).toBe('web9');
    expect(inv.hosts.get('web8')!.address).toBe('10.9.9.9');
  });
});
