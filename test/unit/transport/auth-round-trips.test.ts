/**
 * What a connect asks the server for authentication, against an in-process ssh2 server that records
 * each attempt: with a key, the first attempt is the key (ssh2 by itself opens with "none", a round
 * trip of every connect that only asks which methods the server takes).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import { SshConnection } from '../../../src/transport/index.ts';
import { ed25519KeyPair } from '../../../src/util/ssh-keys.ts';
import { loopbackHost } from '../helpers/hosts.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'provision-auth-rt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('authentication round trips', () => {
  it('with an identity file, the key is the first attempt (no "none" first), and the login works', async () => {
    const clientKey = ed25519KeyPair();
    const keyFile = path.join(dir, 'id_ed25519');
    writeFileSync(keyFile, clientKey.private, { mode: 0o600 });
    const attempts: string[] = [];
    const server = new ssh2.Server({ hostKeys: [ed25519KeyPair().private] }, (client) => {
      client.on('authentication', (ctx) => {
        attempts.push(ctx.method + (ctx.method === 'publickey' && ctx.signature ? '+signed' : ''));
        if (ctx.method === 'publickey') ctx.accept();
        else ctx.reject(['publickey']);
      });
      client.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const conn = await SshConnection.connect(loopbackHost({ port, identityFile: keyFile, knownHosts: path.join(dir, 'known_hosts'), acceptNewHostKeys: true }));
      conn.close();
      expect(attempts[0]).toMatch(/^publickey/);
      expect(attempts).not.toContain('none');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
