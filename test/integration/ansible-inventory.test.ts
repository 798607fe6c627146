/**
 * An Ansible inventory against real sshd and sudo (issue 14, "Inventories from Ansible" and "Secrets
 * from where teams keep them"), reached by provision's CLI as a user would:
 * - an INI inventory directory with group_vars/, the sudo password in a file made by ansible-vault
 *   (test/fixtures/good/ansible/vault/group_vars/all/vault.yml), `ansible_become_password` referring
 *   to it: sudo on web-01 (a user whose sudo asks for a password) gets it, on stdin;
 * - web-02 reached through web-01 by `-o ProxyJump=web-01` in ansible_ssh_common_args, the lab's
 *   known_hosts by `-o UserKnownHostsFile=…` in ansible_ssh_extra_args;
 * - without the password sudo refuses (so the password is what made it work); a wrong vault
 *   password is bad input (exit 4);
 * - a host alias from ~/.ssh/config (Host pattern, HostName, User, IdentityFile, UserKnownHostsFile):
 *   sshd's journal shows the login of the user only ssh_config names.
 * An instance of its own (ai, 10.93.0.0/24), two fresh hosts.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { provision } from '../e2e/lab-env.ts';
import { onConsole } from './faults-helpers.ts';

const NAME = 'ai';
const PREFIX = '10.93.0';
const RUN_BOUND_MS = 120_000;
const fixtures = path.resolve(import.meta.dirname, '../fixtures/good/ansible');
const passwordFile = path.join(fixtures, 'vault-password');

let dir: string;

const sh = async (host: string, script: string) => {
  const r = await onConsole(NAME, host, script);
  if (r.code !== 0) throw new Error(`${host}: ${script}\n${r.stdout}${r.stderr}`);
  return r.stdout;
};

/** An Ansible inventory directory: web-01 as deploy (sudo with a password), web-02 as root through web-01. */
function ansibleInventory(name: string, withBecomePassword: boolean): string {
  const p = labPaths(NAME);
  const inv = path.join(dir, name);
  mkdirSync(path.join(inv, 'group_vars', 'all'), { recursive: true });
  writeFileSync(
    path.join(inv, 'hosts'),
    `[web]
web-01 ansible_host=${PREFIX}.11 ansible_user=deploy
web-02 ansible_host=${PREFIX}.12 ansible_user=root ansible_ssh_common_args='-o ProxyJump=web-01'

[all:vars]
ansible_ssh_private_key_file=${p.sshKey}
ansible_ssh_extra_args='-o UserKnownHostsFile=${p.knownHosts} -o ConnectTimeout=10'
`,
  );
  writeFileSync(
    path.join(inv, 'group_vars', 'all', 'main.yml'),
    `ansible_become: true\n${withBecomePassword ? 'ansible_become_password: "{{ vault_become_password }}"\n' : ''}`,
  );
  copyFileSync(path.join(fixtures, 'vault/group_vars/all/vault.yml'), path.join(inv, 'group_vars', 'all', 'vault.yml'));
  return inv;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-ansible-lab-'));
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['web-01', 'web-02'], pebble: false });
  // deploy: the lab's key, and sudo that asks for the password the vault fixture holds.
  await sh(
    'web-01',
    `id deploy >/dev/null 2>&1 || useradd -m -s /bin/sh deploy
echo 'deploy:sudo-passw0rd-for-deploy' | chpasswd
mkdir -p /home/deploy/.ssh && cp /root/.ssh/authorized_keys /home/deploy/.ssh/authorized_keys
chown -R deploy:deploy /home/deploy/.ssh && chmod 700 /home/deploy/.ssh && chmod 600 /home/deploy/.ssh/authorized_keys
echo 'deploy ALL=(ALL) ALL' > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy && visudo -c >/dev/null
id ops >/dev/null 2>&1 || useradd -m -s /bin/sh ops
echo 'ops:sudo-passw0rd-for-deploy' | chpasswd && usermod -aG sudo ops
mkdir -p /home/ops/.ssh && cp /root/.ssh/authorized_keys /home/ops/.ssh/authorized_keys
chown -R ops:ops /home/ops/.ssh && chmod 700 /home/ops/.ssh && chmod 600 /home/ops/.ssh/authorized_keys`,
  );
}, 300_000);

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('an Ansible inventory on real hosts', () => {
  it('the vaulted ansible_become_password reaches sudo; web-02 is reached through web-01', async () => {
    const inv = ansibleInventory('with-password', true);
    const r = await provision(['ping', '-i', inv, '--vault-password-file', passwordFile], { timeoutMs: RUN_BOUND_MS });
    expect(r.stdout, r.stderr).toMatch(/^web-01: pong \(become: root, /m);
    expect(r.stdout).toMatch(/^web-02: pong \(become: root, /m);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('sudo-passw0rd-for-deploy');
  });

  it('without the password, sudo on web-01 refuses (the password is what made it work)', async () => {
    const inv = ansibleInventory('without-password', false);
    const r = await provision(['ping', '-i', inv, '-l', 'web-01', '--vault-password-file', passwordFile], { timeoutMs: RUN_BOUND_MS });
    // Facts are read with become: the first sudo already refuses.
    expect(r.stdout).toContain('web-01: UNREACHABLE: gathering facts failed: sudo: a password is required');
    expect(r.code).toBe(3);
  });

  it('a wrong vault password: exit 4, the file named', async () => {
    const wrong = path.join(dir, 'wrong');
    writeFileSync(wrong, 'Tr0ub4dor&3\n');
    const inv = ansibleInventory('wrong-password', true);
    const r = await provision(['ping', '-i', inv, '--vault-password-file', wrong], { timeoutMs: RUN_BOUND_MS });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`provision: error: ${path.join(inv, 'group_vars/all/vault.yml')}: the vault password from --vault-password-file ${wrong} does not decrypt it`);
    expect(r.stdout).toBe('');
  });

  it('a host alias from ~/.ssh/config: HostName, User, IdentityFile, UserKnownHostsFile', async () => {
    const p = labPaths(NAME);
    const home = path.join(dir, 'home');
    mkdirSync(path.join(home, '.ssh'), { recursive: true });
    writeFileSync(path.join(home, '.ssh', 'config'), `Host lab-web-*\n  HostName ${PREFIX}.11\n  User ops\n  IdentityFile ${p.sshKey}\n  UserKnownHostsFile ${p.knownHosts}\n`);
    const inv = path.join(dir, 'alias.yml');
    writeFileSync(inv, 'hosts:\n  w1: { address: lab-web-01, connect_timeout: 10, become_password_env: LAB_SUDO_PASSWORD }\n');
    const logins = async () => (await sh('web-01', "journalctl -q -u ssh --no-pager | grep -c 'Accepted publickey for ops ' || true")).trim();
    const before = Number(await logins());
    const r = await provision(['ping', '-i', inv], { env: { HOME: home, SSH_AUTH_SOCK: '', LAB_SUDO_PASSWORD: 'sudo-passw0rd-for-deploy' }, timeoutMs: RUN_BOUND_MS });
    expect(r.stdout, r.stderr).toMatch(/^w1: pong \(become: root, /m);
    expect(r.code).toBe(0);
    // ops (ssh_config's User) logged in: no other user is set anywhere.
    expect(Number(await logins())).toBeGreaterThan(before);
  });
});
