/**
 * SshConnection.spawn (a command whose input and output are streams: a replica's seed) against an
 * in-process ssh2 server that echoes what the command reads: what reaches the command is exactly
 * what was written — never the become password, which exec() sends on stdin for `sudo -S`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Server } from 'ssh2';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Host } from '../../../src/inventory/index.ts';
import { SshConnection } from '../../../src/transport/index.ts';
import { loopbackHost } from '../helpers/hosts.ts';

const PASSWORD = 'Become-Pa55word-never-on-a-stream';
let dir: string;
let server: Server;
let port = 0;
const commands: string[] = [];

function keygen(name: string): string {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-spawn-'));
  const hostKey = keygen('host');
  server = new Server({ hostKeys: [readFileSync(hostKey)] }, (client) => {
    client.on('authentication', (ctx) => ctx.accept());
    client.on('error', () => {});
    client.on('session', (accept) => {
      accept().on('exec', (acceptExec, _reject, info) => {
        commands.push(info.command);
        const stream = acceptExec();
        stream.on('data', (d: Buffer) => stream.write(d)); // the command's stdout is what it read
        stream.on('end', () => {
          stream.stderr.write('a warning\n');
          stream.exit(3);
          stream.end();
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as AddressInfo).port;
  writeFileSync(path.join(dir, 'known_hosts'), '');
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function host(become: boolean): Host {
  process.env.PROVISION_TEST_BECOME_PASSWORD = PASSWORD;
  return loopbackHost(
    {
      user: 'deploy',
      port,
      identityFile: keygen(`client-${commands.length}-${become}`),
      knownHosts: path.join(dir, 'known_hosts'),
      acceptNewHostKeys: true,
      become,
      becomePasswordEnv: 'PROVISION_TEST_BECOME_PASSWORD',
    },
    { name: 'web-02' },
  );
}

async function echoThrough(become: boolean): Promise<{ out: string; done: { code: number; stderr: string }; command: string }> {
  const conn = await SshConnection.connect(host(become));
  try {
    const p = await conn.spawn!('mysql --batch');
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stdin.write('SET SESSION sql_log_bin = 0;\n');
    p.stdin.end('SELECT 1;\n');
    const done = await p.done;
    return { out, done, command: commands[commands.length - 1]! };
  } finally {
    conn.close();
  }
}

describe('SshConnection.spawn', () => {
  test('streams stdin to the command and its stdout back; done carries the exit code and stderr', async () => {
    const r = await echoThrough(false);
    expect(r.command).toBe("sh -c 'mysql --batch'");
    expect(r.out).toBe('SET SESSION sql_log_bin = 0;\nSELECT 1;\n');
    expect(r.done).toEqual({ code: 3, stderr: 'a warning\n' });
  });

  test('with become and a become password: sudo -n, and the password never reaches the command', async () => {
    const r = await echoThrough(true);
    expect(r.command).toBe("sudo -n -H -u root -- sh -c 'mysql --batch'");
    expect(r.out).toBe('SET SESSION sql_log_bin = 0;\nSELECT 1;\n');
    expect(r.out + r.command).not.toContain(PASSWORD);
  });
});
