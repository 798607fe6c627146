/**
 * Host-key verification through SshConnection.connect, against an in-process ssh2 server on
 * loopback (one port that is not 22, as the hosts on port 2222): the defects of issue 12
 * item 1 as a user meets them, each one failing on the regex-based known_hosts code.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Server } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../../../src/inventory/index.ts';
import { SshConnection } from '../../../src/transport/index.ts';
import { ConnectionError } from '../../../src/util/errors.ts';
import { keygen, type TestKey } from './ssh-keygen.ts';
import { loopbackHost } from '../helpers/hosts.ts';

let dir: string;
let clientKey: TestKey;
const hostKeys: TestKey[] = [];
let server: Server | undefined;
let port = 0;

/** An sshd stand-in that accepts any login, with `key` (or several) as its host keys, on `port` (0: any free one). */
async function serve(key: TestKey | TestKey[], onPort = 0): Promise<number> {
  await stop();
  const s = new Server({ hostKeys: [key].flat().map((k) => readFileSync(k.file)) }, (client) => {
    client.on('authentication', (ctx) => ctx.accept());
    client.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(onPort, '127.0.0.1', () => resolve());
  });
  server = s;
  return (s.address() as AddressInfo).port;
}

async function stop(): Promise<void> {
  const s = server;
  server = undefined;
  if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
}

function host(knownHosts: string, acceptNew = false): Host {
  return loopbackHost({ port, identityFile: clientKey.file, knownHosts, acceptNewHostKeys: acceptNew });
}

/** Connects and closes; the ConnectionError when refused. */
async function tryConnect(h: Host): Promise<ConnectionError | undefined> {
  try {
    (await SshConnection.connect(h)).close();
    return undefined;
  } catch (err) {
    if (err instanceof ConnectionError) return err;
    throw err;
  }
}

const entryLines = (file: string) => readFileSync(file, 'utf8').split('\n').filter((l) => l.trim());

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-ssh-host-keys-'));
  clientKey = keygen(dir, 'client', 'ed25519');
  hostKeys.push(keygen(dir, 'host-ed25519', 'ed25519'), keygen(dir, 'host-ecdsa', 'ecdsa'), keygen(dir, 'host-rsa', 'rsa', 2048));
  port = await serve(hostKeys[0]!);
});
afterEach(async () => {
  port = await serve(hostKeys[0]!, port);
});
afterAll(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('SshConnection host keys on a port other than 22', () => {
  it('accepts the host by its [address]:port line', async () => {
    const file = path.join(dir, 'known-port');
    writeFileSync(file, `[127.0.0.1]:${port} ${hostKeys[0]!.pub}\n`);
    expect(await tryConnect(host(file))).toBeUndefined();
  });

  it('with accept_new_host_keys, records the key once and appends nothing on the next runs', async () => {
    const file = path.join(dir, 'accept-once');
    writeFileSync(file, '');
    for (let run = 0; run < 3; run++) expect(await tryConnect(host(file, true))).toBeUndefined();
    expect(entryLines(file)).toEqual([`[127.0.0.1]:${port} ${hostKeys[0]!.pub}`]);
  });

  it('with accept_new_host_keys, a host that shows another key on each connection gets in once, then HOST KEY CHANGED', async () => {
    const file = path.join(dir, 'accept-changing');
    writeFileSync(file, '');
    const verdicts: Array<string | undefined> = [];
    for (const key of hostKeys) {
      port = await serve(key, port);
      verdicts.push((await tryConnect(host(file, true)))?.message);
    }
    expect(verdicts[0]).toBeUndefined();
    expect(verdicts[1]).toMatch(/HOST KEY CHANGED for \[127\.0\.0\.1\]:\d+: it now offers ecdsa-sha2-nistp256 SHA256:/);
    expect(verdicts[2]).toMatch(/HOST KEY CHANGED for \[127\.0\.0\.1\]:\d+: it now offers ssh-rsa SHA256:/);
    expect(entryLines(file)).toEqual([`[127.0.0.1]:${port} ${hostKeys[0]!.pub}`]);
  });

  it('a malformed line for another host does not make this one unreachable', async () => {
    const file = path.join(dir, 'malformed-other');
    writeFileSync(file, `[10.0.0.9:2222 ${hostKeys[1]!.pub}\n[127.0.0.1]:${port} ${hostKeys[0]!.pub}\n`);
    expect(await tryConnect(host(file))).toBeUndefined();
  });

  it('a line naming this host that cannot be read refuses it as a host-key problem naming file:line', async () => {
    const file = path.join(dir, 'malformed-own');
    writeFileSync(file, `[127.0.0.1]:${port} ${hostKeys[0]!.pub}\n[127.0.0.1]:${port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq=\n`);
    const refused = await tryConnect(host(file));
    expect(refused?.level).toBe('hostkey');
    expect(refused?.message).toContain(`${file}:2: the ssh-ed25519 key cannot be read`);
  });

  it('a key that is @revoked is refused even when it is also listed as good', async () => {
    const file = path.join(dir, 'revoked');
    writeFileSync(file, `[127.0.0.1]:${port} ${hostKeys[0]!.pub}\n@revoked * ${hostKeys[0]!.pub}\n`);
    const refused = await tryConnect(host(file, true));
    expect(refused?.level).toBe('hostkey');
    expect(refused?.message).toContain(`is marked @revoked at ${file}:2`);
  });

  it('a server with several host keys is asked for the type known_hosts has (any one of several entries may match)', async () => {
    // ed25519 is our first choice by default; known_hosts knows only the host's RSA key.
    port = await serve([hostKeys[0]!, hostKeys[2]!], port);
    const file = path.join(dir, 'types');
    writeFileSync(file, `[127.0.0.1]:${port} ${hostKeys[1]!.pub}\n[127.0.0.1]:${port} ${hostKeys[2]!.pub}\n`);
    expect(await tryConnect(host(file))).toBeUndefined();
  });
});
