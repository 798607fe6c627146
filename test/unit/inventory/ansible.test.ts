import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { detectFormat, loadInventory, prepareHosts, type Inventory } from '../../../src/inventory/index.js';
import { iniValue } from '../../../src/inventory/ansible/ini.js';
import { expandHostPattern } from '../../../src/inventory/ansible/host-pattern.js';
import { readSshArgs } from '../../../src/inventory/ansible/connection-vars.js';
import { shlexSplit } from '../../../src/inventory/shlex.js';
import { InventoryError } from '../../../src/util/errors.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/good/ansible');
const load = (file: string, env: NodeJS.ProcessEnv = {}) => loadInventory(file, { env, sshConfig: false, interactive: false });

/** Everything an inventory says, in an order-free form: hosts, groups, and per host address, groups, vars and connection. */
function summary(inv: Inventory) {
  const hosts: Record<string, unknown> = {};
  for (const h of inv.hosts.values()) hosts[h.name] = { address: h.address, groups: h.groups, vars: { ...h.vars }, connection: { ...h.connection } };
  const groups = Object.fromEntries([...inv.groups].map(([g, hs]) => [g, [...hs].sort()]));
  return { hosts, groups };
}

describe('an Ansible inventory and the native inventory of the same hosts load the same', () => {
  const native = summary(load(path.join(fixtures, 'site-native.yml')));

  it.each([
    ['INI file with group_vars/ and host_vars/', 'site/hosts.ini'],
    ["Ansible's YAML format", 'site/hosts.yml'],
    ['the inventory directory (its YAML file; *.ini files are skipped there, as Ansible skips them)', 'site'],
  ])('%s', (_what, file) => {
    const ansible = summary(load(path.join(fixtures, file)));
    expect(Object.keys(ansible.hosts).sort()).toEqual(Object.keys(native.hosts).sort());
    expect(ansible.groups).toEqual(native.groups);
    for (const name of Object.keys(native.hosts)) expect(ansible.hosts[name], name).toEqual(native.hosts[name]);
  });

  it('spells out what the table compares (so a table of empty inventories cannot pass)', () => {
    const web1 = native.hosts.web1 as { address: string; groups: string[]; vars: Record<string, unknown>; connection: Record<string, unknown> };
    expect(web1.groups).toEqual(['all', 'prod', 'web']);
    expect(web1.vars).toEqual({
      ntp: 'pool.ntp.org',
      domain: 'example.com',
      tier: 'host-file',
      admin_email: 'ops@example.com',
      env: 'production',
      http_port: 8080,
      upstream: 'web1:8080',
    });
    expect(web1.connection).toMatchObject({ user: 'deploy', port: 22, jump: 'bastion', become: true, knownHosts: '/etc/provision/known_hosts_web' });
    expect((native.hosts.db1 as { vars: object }).vars).toMatchObject({ db_port: 5433, replicas: ['web1', 'web2'], tier: 'all-file' });
    expect((native.hosts.lb1 as { connection: object }).connection).toMatchObject({ port: 2222 });
    expect(native.groups.ungrouped).toEqual(['bastion']);
  });
});

describe("precedence as Ansible's own ansible-inventory --list computes it", () => {
  // Recorded with ansible-core 2.14 (Debian 12): ansible-inventory -i SOURCE --list, its _meta.hostvars.
  // Templates are not evaluated by --list: values holding "{{" are left to vars.test.ts; ansible_* vars are the connection's.
  it.each([
    ['site/hosts.ini', 'site-hosts.ini.json'],
    ['site/hosts.yml', 'site-hosts.yml.json'],
    ['site', 'site.json'],
  ])('%s', (source, recorded) => {
    const expected = JSON.parse(readFileSync(path.join(fixtures, 'recorded', recorded), 'utf8')) as Record<string, Record<string, unknown>>;
    const inv = load(path.join(fixtures, source));
    expect([...inv.hosts.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [host, vars] of Object.entries(expected)) {
      const ours = inv.hosts.get(host)!.vars;
      const plain = Object.entries(vars).filter(([k, v]) => !k.startsWith('ansible_') && !JSON.stringify(v).includes('{{'));
      for (const [k, v] of plain) expect(ours[k], `${host}.${k}`).toEqual(v);
      expect(Object.keys(ours).sort(), host).toEqual(Object.keys(vars).filter((k) => !k.startsWith('ansible_')).sort());
    }
  });

  const ansibleInventory = ['/usr/bin/ansible-inventory', '/usr/local/bin/ansible-inventory'].find((p) => existsSync(p));
  it.skipIf(!ansibleInventory)('the recordings are what ansible-inventory prints today', () => {
    for (const [source, recorded] of [
      ['site/hosts.ini', 'site-hosts.ini.json'],
      ['site', 'site.json'],
    ]) {
      const out = execFileSync(ansibleInventory!, ['-i', path.join(fixtures, source!), '--list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 });
      expect(JSON.parse(out)._meta.hostvars).toEqual(JSON.parse(readFileSync(path.join(fixtures, 'recorded', recorded!), 'utf8')));
    }
  });
});

describe('Ansible connection vars', () => {
  const inv = load(path.join(fixtures, 'site/hosts.ini'));
  it('ansible_host, the port of host:port, ansible_user, the key, become and become_user', () => {
    expect(inv.hosts.get('lb1')!.address).toBe('203.0.113.20');
    expect(inv.hosts.get('lb1')!.connection).toMatchObject({ port: 2222, user: 'deploy', become: false });
    expect(inv.hosts.get('bastion')!.connection.identityFile).toBe('/etc/provision/keys/bastion');
    expect(inv.hosts.get('db1')!.connection).toMatchObject({ become: true, becomeUser: 'postgres' });
  });

  it('ansible_* vars are the connection, not host.vars (templates still read them)', () => {
    expect(Object.keys(inv.hosts.get('web1')!.vars).filter((k) => k.startsWith('ansible_'))).toEqual([]);
  });

  it('unknown ansible_* vars are warned about once, with where', () => {
    expect(inv.warnings).toEqual([`${path.join(fixtures, 'site/hosts.ini')}:26: ansible_python_interpreter: not used by provision; ignored (said once)`]);
  });
});

describe('ssh arguments in ansible_ssh_common_args / ansible_ssh_extra_args', () => {
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ['-o ProxyJump=ops@bastion:2222', { jump: 'ops@bastion:2222' }, []],
    ['-J bastion -o ProxyJump=other', { jump: 'bastion' }, []],
    ['-o "ProxyJump bastion"', { jump: 'bastion' }, []],
    ['-oUserKnownHostsFile=/etc/kh -o UserKnownHostsFile=/other', { knownHosts: '/etc/kh' }, []],
    ["-o ProxyCommand='ssh -W %h:%p -q ops@bastion -p 2200'", { jump: 'ops@bastion:2200' }, []],
    ['-o StrictHostKeyChecking=accept-new', { acceptNew: true }, []],
    ['-F none -i ~/.ssh/k -p 2022 -l admin', { sshConfig: false, identity: '~/.ssh/k', port: 2022, user: 'admin' }, []],
    ['-C -o ControlMaster=auto -o ControlPersist=60s -q', {}, []],
    ['-o StrictHostKeyChecking=no', {}, ['AT: StrictHostKeyChecking=no: provision always verifies host keys; ignored']],
    ['-o UserKnownHostsFile=/dev/null', {}, ['AT: UserKnownHostsFile=/dev/null would never know a host key: provision always verifies them; ignored']],
    ['-o ProxyCommand="nc -X connect -x proxy:3128 %h %p"', {}, ['AT: ProxyCommand is not run by provision (only "ssh -W %h:%p HOST" is read, as a jump host); ignored']],
    ['-A -o ForwardX11=yes', {}, ['AT: ssh flag -A is not used by provision; ignored (said once)', 'AT: ssh option ForwardX11 is not used by provision; ignored (said once)']],
  ];
  it.each(cases)('%s', (text, expected, warnings) => {
    const seen: string[] = [];
    expect(readSshArgs(text, 'AT', (_k, m) => seen.push(m))).toEqual(expected);
    expect(seen).toEqual(warnings);
  });

  it('ansible_user and ansible_port win over -o User / -o Port in the args (ssh keeps the first, and Ansible puts them first)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-ansible-args-'));
    try {
      writeFileSync(path.join(dir, 'hosts'), 'h1 ansible_user=deploy ansible_port=2200 ansible_ssh_common_args="-o User=other -o Port=9 -o IdentityFile=/k1" ansible_ssh_extra_args="-i /k2 -J j1"\n');
      const c = load(path.join(dir, 'hosts')).hosts.get('h1')!.connection;
      expect(c).toMatchObject({ user: 'deploy', port: 2200, identityFile: '/k1', jump: 'j1' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('INI details', () => {
  it.each([
    ['8080', 8080],
    ['"8080"', '8080'],
    ["'a b'", 'a b'],
    ['True', true],
    ['yes', 'yes'],
    ['None', null],
    ['[1, "two", [3]]', [1, 'two', [3]]],
    ["{'a': 1, 'b': [True, None]}", { a: 1, b: [true, null] }],
    ['(1, 2)', [1, 2]],
    ['1.5e3', 1500],
    ['0x1F', 31],
    ['-42', -42],
    ['0755', '0755'],
    ['10.0.0.1', '10.0.0.1'],
    ['/usr/bin/python3', '/usr/bin/python3'],
    ['"a\\tb"', 'a\tb'],
    ['"one" "two"', 'onetwo'],
    ['1_000', 1000],
    ['1j', '1j'],
    // Python: "SyntaxError: invalid syntax. Perhaps you forgot a comma?", so the text as written.
    ["{'a': 1 'b': 2}", "{'a': 1 'b': 2}"],
    ['{1 2}', '{1 2}'],
    ["{'a': 1, 'b': 2,}", { a: 1, b: 2 }],
    ['{1, 2,}', [1, 2]],
  ])('a value %s is read as Python reads it', (text, value) => {
    expect(iniValue(text)).toEqual(value);
  });

  // Expected values printed by Python 3.11's shlex.split(s, comments=True).
  it.each([
    ['a b#c d', ['a', 'b']],
    ['a "x\\\\y\\"z" e\\ f', ['a', 'x\\y"z', 'e f']],
    ["a='b c'd", ['a=b cd']],
    ['x="" y', ['x=', 'y']],
    ['a\\#b c', ['a#b', 'c']],
    ['"#a" b', ['#a', 'b']],
    ["a 'b\\'", ['a', 'b\\']],
    ["k='it''s'", ['k=its']],
    ['a\\', undefined],
  ])('a host line %s is split as shlex splits it', (text, words) => {
    expect(shlexSplit(text, { comments: true })).toEqual(words);
  });

  it.each([
    ['web[01:03].example.com', { hosts: ['web01.example.com', 'web02.example.com', 'web03.example.com'] }],
    ['db[1:5:2]', { hosts: ['db1', 'db3', 'db5'] }],
    ['node-[a:c]', { hosts: ['node-a', 'node-b', 'node-c'] }],
    ['r[1:2]c[a:b]', { hosts: ['r1ca', 'r1cb', 'r2ca', 'r2cb'] }],
    ['web1:2222', { hosts: ['web1'], port: 2222 }],
    ['10.0.0.[1:2]:22', { hosts: ['10.0.0.1', '10.0.0.2'], port: 22 }],
    ['[2001:db8::1]:2222', { hosts: ['2001:db8::1'], port: 2222 }],
    ['2001:db8::1', { hosts: ['2001:db8::1'] }],
  ])('a host entry %s', (entry, expected) => {
    expect(expandHostPattern(entry)).toEqual(expected);
  });
});

describe('which format a file is in', () => {
  it.each([
    ['x.ini', '[web]\nweb1\n', 'ansible-ini'],
    ['hosts', 'web1 ansible_host=10.0.0.1\n[db]\ndb1\n', 'ansible-ini'],
    ['hosts', 'web1\nweb2\n', 'ansible-ini'],
    ['hosts', 'web1:2222\n', 'ansible-ini'],
    ['hosts', 'all:\n  hosts:\n    web1:\n', 'ansible-yaml'],
    ['hosts', 'web:\n  hosts:\n    web1:\n', 'ansible-yaml'],
    ['x.yml', 'all:\n  children:\n    web: {}\n', 'ansible-yaml'],
    ['x.yml', 'web:\n  hosts: {web1: {}}\n', 'ansible-yaml'],
    ['x.yml', 'hosts:\n  web1: {address: 10.0.0.1}\n', 'native'],
    ['x.yaml', 'defaults: {user: a}\nhosts: {}\n', 'native'],
    ['x.yml', '- a\n', 'native'],
    ['x.yml', '', 'native'],
    ['x.yml', 'hosts: [\n', 'native'],
    ['x.json', '{"all": {"hosts": {"web1": null}}}', 'ansible-yaml'],
  ])('%s %j is %s', (file, text, format) => {
    expect(detectFormat(file, text)).toBe(format);
  });
});

describe('a folder given as --inventory', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'provision-ansible-dir-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('(regression: it failed with EISDIR) reads every inventory file in it, with its group_vars/', () => {
    const dir = path.join(tmp, 'inv');
    mkdirSync(path.join(dir, 'group_vars'), { recursive: true });
    writeFileSync(path.join(dir, '01-web'), '[web]\nweb1 ansible_host=10.0.0.1\n');
    writeFileSync(path.join(dir, '02-db.yml'), 'db:\n  hosts:\n    db1:\n  vars:\n    role: db\n');
    writeFileSync(path.join(dir, 'prod:children.txt'), 'ignored, as Ansible ignores *.txt here');
    writeFileSync(path.join(dir, 'group_vars', 'web.yml'), 'role: web\n');
    const inv = load(dir);
    expect(inv.file).toBe(dir);
    expect(inv.name).toBe('inv');
    expect([...inv.hosts.keys()]).toEqual(['web1', 'db1']);
    expect({ ...inv.hosts.get('web1')!.vars }).toEqual({ role: 'web' });
    expect({ ...inv.hosts.get('db1')!.vars }).toEqual({ role: 'db' });
    expect(inv.hosts.get('web1')!.address).toBe('10.0.0.1');
  });

  it('a native inventory inside one is refused, naming it', () => {
    const dir = path.join(tmp, 'mixed');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'prod.yml'), 'hosts:\n  web1: {address: 10.0.0.1}\n');
    expect(() => load(dir)).toThrow(`${path.join(dir, 'prod.yml')}: a native inventory cannot be part of an inventory directory`);
  });

  it('an empty one is refused', () => {
    const dir = path.join(tmp, 'empty');
    mkdirSync(dir, { recursive: true });
    expect(() => load(dir)).toThrow(`inventory ${dir}: a directory with no inventory file in it`);
  });
});

describe('connection settings are worked out when asked for (they may come from a vault file)', () => {
  it('ansible_connection=local is refused for the host that uses it, not the others', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-ansible-local-'));
    try {
      writeFileSync(path.join(dir, 'hosts'), 'localhost ansible_connection=local\nweb1\n');
      const inv = load(path.join(dir, 'hosts'));
      prepareHosts(inv, ['web1']);
      let err: unknown;
      try {
        prepareHosts(inv, ['localhost']);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InventoryError);
      expect((err as Error).message).toBe(`${path.join(dir, 'hosts')}:1: ansible_connection: "local" is not supported: provision connects over SSH (host localhost)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
