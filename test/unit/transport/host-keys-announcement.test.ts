/**
 * OpenSSH's sshd announces its host keys after login (`hostkeys-00@openssh.com`); ssh2 by itself
 * answers with `hostkeys-prove-00@openssh.com`, making the host sign with every key and the
 * controller verify every signature, on every connect, for nothing we use (README "Speed", #18).
 * Our connections leave the announcement unanswered. An in-process server (helpers/sh-server.ts)
 * sends the announcement as sshd does and records the global requests it receives.
 */
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshConnection } from '../../../src/transport/index.ts';
import { ed25519KeyPair } from '../../../src/util/ssh-keys.ts';
import { loopbackHost } from '../helpers/hosts.ts';
import { shServer, type ShServer } from '../helpers/sh-server.ts';

// ssh2 has no API for a server to send a global request of its own: its packet writer, as its Protocol uses it.
const { sendPacket } = createRequire(import.meta.url)('ssh2/lib/protocol/utils.js') as { sendPacket: (proto: unknown, packet: Buffer) => void };
const GLOBAL_REQUEST = 80;

interface ServerProtocol {
  _packetRW: { write: { allocStart: number; alloc(n: number): Buffer; finalize(b: Buffer): Buffer } };
  _handlers: { GLOBAL_REQUEST: (...args: unknown[]) => void };
}

/** sshd's announcement: the request name, want-reply false, then each host key's public blob. */
function announce(proto: ServerProtocol, keys: Buffer[]): void {
  const name = 'hostkeys-00@openssh.com';
  let p = proto._packetRW.write.allocStart;
  const packet = proto._packetRW.write.alloc(1 + 4 + name.length + 1 + keys.reduce((n, k) => n + 4 + k.length, 0));
  packet[p] = GLOBAL_REQUEST;
  packet.writeUInt32BE(name.length, ++p);
  packet.write(name, (p += 4), 'latin1');
  packet[(p += name.length)] = 0;
  p++;
  for (const k of keys) {
    packet.writeUInt32BE(k.length, p);
    k.copy(packet, (p += 4));
    p += k.length;
  }
  sendPacket(proto, proto._packetRW.write.finalize(packet));
}

let server: ShServer;
let dir: string;
const received: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-hostkeys-announce-'));
  // Keys the server announces (as sshd announces all of its own): their blobs, what ssh2 asks proof of.
  const announced = [ed25519KeyPair(), ed25519KeyPair()].map((k) => (ssh2.utils.parseKey(k.private) as ssh2.ParsedKey).getPublicSSH());
  server = await shServer({
    onConnection: (client) => {
      client.on('ready', () => {
        const proto = (client as unknown as { _protocol: ServerProtocol })._protocol;
        const handle = proto._handlers.GLOBAL_REQUEST;
        proto._handlers.GLOBAL_REQUEST = (...args: unknown[]) => {
          received.push(String(args[1]));
          handle(...args);
        };
        announce(proto, announced);
      });
    },
  });
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const host = () => loopbackHost({ port: server.port, knownHosts: path.join(dir, 'known_hosts'), acceptNewHostKeys: true });

describe("the server's host key announcement", () => {
  it('ssh2 alone asks the server to prove the announced keys (what this test would see)', async () => {
    received.length = 0;
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.on('ready', () => resolve()).on('error', reject);
      client.connect({ host: '127.0.0.1', port: server.port, username: 'root', hostVerifier: () => true });
    });
    // A command after login: the server has read what the client sent before it.
    await new Promise<void>((resolve, reject) => client.exec('true', (err, ch) => (err ? reject(err) : ch.on('close', () => resolve()).resume())));
    client.end();
    expect(received).toContain('hostkeys-prove-00@openssh.com');
  });

  it('our connection leaves it unanswered, and works', async () => {
    received.length = 0;
    const conn = await SshConnection.connect(host());
    try {
      const r = await conn.exec('echo ok');
      expect(r).toMatchObject({ code: 0, stdout: 'ok\n' });
      expect(received).not.toContain('hostkeys-prove-00@openssh.com');
    } finally {
      conn.close();
    }
  });
});
