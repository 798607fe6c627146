/**
 * Hostile values and secrets in a playbook's command tasks, on a real lab host (sudo, journald):
 * an inventory value made to break out of its quotes runs nothing; a secret handed to a command in
 * its environment or on stdin arrives whole and appears in no output and not in sudo's journal
 * (which logs every command line it runs by exec, and the long-lived channel's reader once); a secret
 * in a command line is refused before connecting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { provision } from '../e2e/lab-env.ts';
import { writeInventory, writePlaybook } from './faults-helpers.ts';

const NAME = 'tpl';
const SUBNET = '10.93.0';
const SECRET = `Pa55\\w0rd"20'24`;
const INJECTION = "bob'; touch /tmp/INJECTED; echo '";
let dir: string;

const onHost = async (cmd: string) => (await hostExec('web-01', ['sh', '-c', cmd], NAME)).stdout;
const env = { PROVISION_SECRET_DB_PASSWORD: SECRET };

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-tpl-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['web-01'], pebble: false });
  // A sudo user, as on a real host: sudo logs every command line it runs, which is what argv shows.
  await onHost(
    'useradd -m -s /bin/sh deploy && mkdir -p ~deploy/.ssh && cp /root/.ssh/authorized_keys ~deploy/.ssh/ && chown -R deploy: ~deploy/.ssh && ' +
      'echo "deploy ALL=(ALL) NOPASSWD: ALL" > /etc/sudoers.d/deploy && chmod 440 /etc/sudoers.d/deploy',
  );
});

afterAll(async () => {
  await labDown(NAME);
  rmSync(dir, { recursive: true, force: true });
});

function inventory(channel?: 'exec' | 'persistent'): string {
  return writeInventory(dir, NAME, SUBNET, {
    tail: `groups:
  web:
    user: deploy
    become: true${channel ? `\n    channel: ${channel}` : ''}
vars:
  owner: ${JSON.stringify(INJECTION)}
  db_password: !secret db_password
`,
  });
}

describe('values and secrets in command tasks, on a real host', () => {
  // By exec (a channel per command: sudo logs each command line) and through the long-lived channel
  // (the default: sudo logs the reader once; the commands run in its `sh -c`, as data in frames).
  for (const channel of ['exec', 'persistent'] as const) {
    it(`the injection string stays data; secrets reach the command by environment and stdin only (channel: ${channel})`, async () => {
      const since = (await onHost('date +%s; rm -f /root/owner.txt /root/pw-env.txt /root/pw-stdin.txt')).trim();
      const pb = writePlaybook(
        dir,
        `- name: hostile values
  hosts: web
  tasks:
    - name: owner file
      command: { cmd: "printf '%s' {{ owner }} > /root/owner.txt" }
    - name: password from the environment
      command:
        cmd: 'umask 077; printf %s "$DB_PASSWORD" > /root/pw-env.txt'
        environment: { DB_PASSWORD: "{{ db_password }}" }
    - name: password on stdin
      command: { cmd: "umask 077; cat > /root/pw-stdin.txt", stdin: "{{ db_password | dump }}" }
`,
      );
      const r = await provision(['-i', inventory(channel), '-p', pb, '--limit', 'web-01', '--diff', '-v'], { env });
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(await onHost('ls /tmp/INJECTED 2>&1 || true')).toMatch(/No such file/);
      expect(await onHost('cat /root/owner.txt')).toBe(INJECTION);
      expect(await onHost('cat /root/pw-env.txt')).toBe(SECRET);
      expect(await onHost('cat /root/pw-stdin.txt')).toBe(JSON.stringify(SECRET));
      const output = r.stdout + r.stderr;
      expect(output).not.toContain(SECRET);
      expect(output).not.toContain(JSON.stringify(SECRET).slice(1, -1));
      // sudo logs each command line it runs (by exec, the tasks'; through the channel, the reader's): never the secret.
      const journal = await onHost(`journalctl --no-pager -q --since @${since} -t sudo`);
      expect(journal).toContain('COMMAND=');
      if (channel === 'exec') {
        expect(journal).toContain('touch /tmp/INJECTED'); // the owner value, as data inside the command line
      } else {
        // The reader, started once under sudo; the tasks' command lines are not in sudo's log (docs/security.md).
        expect(journal).toContain('while read -r n s i');
        expect(journal).not.toContain('touch /tmp/INJECTED');
      }
      expect(journal).not.toContain('Pa55');
    });
  }

  it('a secret in a command line is refused before connecting (exit 4), nothing runs', async () => {
    const pb = writePlaybook(
      dir,
      `- name: leak
  hosts: web
  tasks:
    - name: in argv
      command: { cmd: "touch /root/ran; mysqladmin password {{ db_password }}" }
`,
    );
    const r = await provision(['-i', inventory(), '-p', pb, '--limit', 'web-01'], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('[0].tasks[0].command.cmd: reads the secret var "db_password" (host web-01): a secret never goes into a command line');
    expect(r.stderr).not.toContain('Pa55');
    expect(await onHost('ls /root/ran 2>&1 || true')).toMatch(/No such file/);
  });
});
