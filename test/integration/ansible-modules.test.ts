/**
 * A simple Ansible role's tasks, spelt as Ansible users write them (FQCNs, yes/no, name: for
 * packages, free-form shell with args:, an unquoted octal mode, community.general.ufw), converge a
 * real lab host; the second run changes nothing.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { provision } from '../e2e/lab-env.ts';
import { failures, recap, writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'ergoa';
const SUBNET = '10.85.0';
const PLAYBOOK = path.resolve(import.meta.dirname, '../fixtures/good/ansible-role/site.yml');
let dir: string;
let inventory: string;

const onHost = async (cmd: string) => (await hostExec('web-01', ['sh', '-c', cmd], NAME)).stdout.trim();

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-ansible-modules-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['web-01'], pebble: false });
  inventory = writeInventory(dir, NAME, SUBNET);
});

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

describe('an Ansible role with Ansible module names, on a real host', () => {
  it('converges the host', async () => {
    const r = await provision(['-i', inventory, '-p', PLAYBOOK, '--limit', 'web-01', '--json']);
    expect(failures(r), r.stdout + r.stderr).toEqual([]);
    expect(r.code, r.stderr).toBe(2);
    expect(await onHost("dpkg-query -W -f '${Status}' ufw")).toBe('install ok installed');
    expect(await onHost('id -gn deploy; id -Gn deploy; getent passwd deploy | cut -d: -f7')).toBe('deploy\ndeploy users\n/bin/bash');
    expect(await onHost("stat -c '%a %U' /srv/app")).toBe('750 deploy');
    expect(await onHost('cat /srv/app/README /srv/app/banner.txt /etc/motd /srv/app/app.conf /srv/app/hello')).toBe(
      'managed by provision\nauthorised use only\nThis host is web-01, provisioned.\nport=8080\nhello',
    );
    expect(await onHost('test -e /srv/app/.initialised && echo yes')).toBe('yes');
    const ufw = await onHost('ufw status verbose');
    expect(ufw).toContain('Status: active');
    expect(ufw).toContain('deny (incoming)');
    expect(ufw).toMatch(/^22\/tcp\s+ALLOW IN\s+Anywhere/m);
  });

  it('the second run changes nothing', async () => {
    const r = await provision(['-i', inventory, '-p', PLAYBOOK, '--limit', 'web-01', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(recap(r)['web-01']).toMatchObject({ changed: 0, failed: 0 });
  });

  it('-vv shows each command and its output, on screen and in --log, with a secret masked in both', async () => {
    const SECRET = 'tok-Zr8q-2026';
    const inv = writeInventory(dir, NAME, SUBNET, { tail: 'vars:\n  api_token: !secret api_token\n' });
    // Ansible sets environment at the task level, which is not read here: this task is in our spelling.
    const play = writePlaybook(dir, `- name: token\n  hosts: web\n  tasks:\n    - name: show the token\n      command:\n        cmd: 'printf "token=%s\\n" "$TOKEN"'\n        environment: { TOKEN: "{{ api_token }}" }\n`);
    const log = path.join(dir, 'run.log');
    const r = await provision(['-i', inv, '-p', play, '--limit', 'web-01', '-vv', '--log', log], { env: { PROVISION_SECRET_API_TOKEN: SECRET } });
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const text = readFileSync(log, 'utf8');
    for (const out of [r.stdout, text]) {
      expect(out).toMatch(/web-01: \$ .*printf .*\(exit 0, /);
      expect(out).toMatch(/\| token=\*+$/m);
      expect(out).not.toContain(SECRET);
    }
    expect(text.split('\n').filter(Boolean).every((l) => /^\d{4}-\d\d-\d\dT[\d:.]+Z /.test(l))).toBe(true);
    expect(statSync(log).mode & 0o777).toBe(0o600);
  });
});
