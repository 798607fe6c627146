import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2, { Server } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareHosts, type Host, type Inventory } from '../../../src/inventory/index.js';
import { SshConnection } from '../../../src/transport/index.js';
import { identityReads } from '../../../src/transport/identity-key.js';
import { InventoryError } from '../../../src/util/errors.js';
import { Secret } from '../../../src/util/secrets.js';
import { loopbackHost } from '../helpers/hosts.ts';

/*
 * Passphrase-protected identity files: through the agent (a real ssh-agent holding the key), or the
 * passphrase (asked on a terminal before connecting), or one clear error. Against an in-process ssh2
 * server on loopback that accepts only this one public key.
 */
let dir: string;
let server: Server;
let port: number;
let agent: ChildProcess | undefined;
let agentSocket: string;
const PASSPHRASE = 'open sesame, slowly';

function keygen(name: string, passphrase: string): string {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', file]);
  return file;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-identity-'));
  const key = keygen('locked', PASSPHRASE);
  const allowed = ssh2.utils.parseKey(readFileSync(`${key}.pub`));
  if (allowed instanceof Error) throw allowed;
  const hostKey = keygen('host', '');
  server = new Server({ hostKeys: [readFileSync(hostKey)] }, (client) => {
    client.on('authentication', (ctx) => {
      if (ctx.method === 'publickey' && ctx.key.algo === allowed.type && ctx.key.data.equals(allowed.getPublicSSH())) {
        if (!ctx.signature) return ctx.accept();
        return allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject();
      }
      ctx.reject(['publickey']);
    });
    client.on('ready', () => client.end());
    client.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as AddressInfo).port;
  writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(`${hostKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);

  // A real agent, in the foreground (killed by its pid afterwards), holding the unlocked key.
  agentSocket = path.join(dir, 'agent.sock');
  agent = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
  for (let i = 0; i < 50 && !existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 100));
  const askpass = path.join(dir, 'askpass');
  writeFileSync(askpass, `#!/bin/sh\nprintf '%s\\n' '${PASSPHRASE}'\n`);
  chmodSync(askpass, 0o700);
  execFileSync('ssh-add', [key], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }, stdio: 'ignore', timeout: 20_000 });
});

afterAll(async () => {
  if (agent?.pid) process.kill(agent.pid, 'SIGTERM');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function inventoryOf(h: Host): Inventory {
  return { name: 't', file: 't', hosts: new Map([[h.name, h]]), groups: new Map([['all', [h.name]]]), secrets: [] };
}

/** A host that logs in with this key file and the passphrase (as asked on a terminal before connecting). */
function withKey(file: string): Host {
  const h = loopbackHost({ user: 'deploy', port, identityFile: file, knownHosts: path.join(dir, 'known_hosts') });
  h.connection.identityPassphrase = new Secret('passphrase', PASSPHRASE);
  return h;
}

function host(agentSock?: string): Host {
  return loopbackHost({ user: 'deploy', port, identityFile: path.join(dir, 'locked'), agent: agentSock, knownHosts: path.join(dir, 'known_hosts') });
}

describe('a passphrase-protected identity file', () => {
  it('with no agent and no terminal: one clear error before connecting', () => {
    const saved = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      const h = host();
      let err: unknown;
      try {
        prepareHosts(inventoryOf(h), ['web-01'], { interactive: false });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InventoryError);
      expect((err as InventoryError).message).toBe(`host web-01: identity file ${path.join(dir, 'locked')} is protected by a passphrase, and there is no ssh-agent nor a terminal to ask it on`);
      expect((err as InventoryError).hint).toBe(`add it to an agent (eval $(ssh-agent); ssh-add ${path.join(dir, 'locked')}), or run on a terminal`);
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
    }
  });

  it('through the agent, which holds it unlocked', async () => {
    const h = host(agentSocket);
    prepareHosts(inventoryOf(h), ['web-01'], { interactive: false });
    expect(h.connection.agent).toBe(agentSocket);
    (await SshConnection.connect(h)).close();
  });

  it('with its passphrase (as asked on a terminal before connecting)', async () => {
    const h = host();
    h.connection.identityPassphrase = new Secret('passphrase', PASSPHRASE);
    (await SshConnection.connect(h)).close();
  });

  it('is read and parsed once while the file is unchanged, whatever the number of hosts (its KDF is ~0.3 s of CPU per parse)', async () => {
    const copy = path.join(dir, 'locked-once');
    writeFileSync(copy, readFileSync(path.join(dir, 'locked')), { mode: 0o600 });
    const before = identityReads();
    for (let i = 0; i < 4; i++) (await SshConnection.connect(withKey(copy))).close();
    expect(identityReads() - before).toBe(1);
  });

  it('a key replaced on disk is read again at the next connect (a process that outlives one run: the API)', async () => {
    const rotated = path.join(dir, 'rotated');
    writeFileSync(rotated, readFileSync(path.join(dir, 'locked')), { mode: 0o600 });
    (await SshConnection.connect(withKey(rotated))).close();
    // Another key, with the same passphrase, that the server does not accept: the next login must use it and fail.
    const other = keygen('other', PASSPHRASE);
    writeFileSync(rotated, readFileSync(other), { mode: 0o600 });
    await expect(SshConnection.connect(withKey(rotated))).rejects.toThrow(/authentication|auth/i);
  });

  it('an identity file that is not a private key: one clear error naming it', async () => {
    const bad = path.join(dir, 'not-a-key');
    writeFileSync(bad, 'this is not a key\n', { mode: 0o600 });
    const h = loopbackHost({ user: 'deploy', port, identityFile: bad, knownHosts: path.join(dir, 'known_hosts') });
    await expect(SshConnection.connect(h)).rejects.toThrow(`web-01: cannot parse identity file ${bad}: `);
    const pub = loopbackHost({ user: 'deploy', port, identityFile: path.join(dir, 'locked.pub'), knownHosts: path.join(dir, 'known_hosts') });
    await expect(SshConnection.connect(pub)).rejects.toThrow(`web-01: cannot parse identity file ${path.join(dir, 'locked.pub')}: it holds a public key, not a private one`);
  });

  it('the transport without a passphrase nor an agent says so (it does not try and fail to parse)', async () => {
    await expect(SshConnection.connect(host())).rejects.toThrow(`web-01: identity file ${path.join(dir, 'locked')} is protected by a passphrase: add it to ssh-agent, or run on a terminal to be asked for it`);
  });
});
