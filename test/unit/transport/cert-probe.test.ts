/**
 * The certificate fetch (our half of an SSH key exchange) against a scripted server on loopback,
 * and the whole @cert-authority decision of HostKeyCheck on top of it with certificates made by
 * ssh-keygen. The real sshd case is in test/integration/hostkeys.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HostKeyCheck, fetchHostCertificate } from '../../../src/transport/hostkeys/index.ts';
import { WireReader, WireWriter } from '../../../src/transport/hostkeys/wire.ts';
import { ConnectionError } from '../../../src/util/errors.ts';
import { keygen, sign, type TestKey } from './ssh-keygen.ts';

function packet(payload: Buffer): Buffer {
  const padding = 8 - ((5 + payload.length) % 8) + 8;
  return new WireWriter().uint32(1 + payload.length + padding).byte(padding).raw(payload).raw(Buffer.alloc(padding)).toBuffer();
}

function kexinit(hostKeyAlgorithms: string[]): Buffer {
  const w = new WireWriter().byte(20).raw(Buffer.alloc(16));
  w.nameList(['curve25519-sha256', 'ecdh-sha2-nistp256']).nameList(hostKeyAlgorithms);
  for (const list of [['aes128-ctr'], ['aes128-ctr'], ['hmac-sha2-256'], ['hmac-sha2-256'], ['none'], ['none'], [], []]) w.nameList(list);
  return w.boolean(false).uint32(0).toBuffer();
}

interface Script {
  hostKeyAlgorithms: string[];
  /** K_S of the KEX reply. */
  hostKey?: Buffer;
  /** Raw bytes instead of a well-formed exchange. */
  raw?: Buffer;
  silent?: boolean;
}

/** What the client sent, for the assertions. */
interface Seen {
  ident?: string;
  hostKeyAlgorithms?: string[];
  kexInit?: boolean;
}

let server: Server | undefined;
async function scripted(script: Script): Promise<{ port: number; seen: Seen }> {
  const seen: Seen = {};
  server = createServer((sock: Socket) => {
    sock.on('error', () => {});
    // Read (and drop) what a mute script is sent, so it sees the client hang up and the server can close.
    if (script.silent || script.raw) sock.resume();
    if (script.silent) return;
    if (script.raw) return void sock.write(script.raw);
    sock.write('a banner line before the identification\r\nSSH-2.0-Scripted_1.0\r\n');
    sock.write(packet(Buffer.from([2, 0, 0, 0, 0]))); // SSH_MSG_IGNORE, to be skipped
    sock.write(packet(kexinit(script.hostKeyAlgorithms)));
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!seen.ident) {
        const nl = buf.indexOf(0x0a);
        if (nl < 0) return;
        seen.ident = buf.subarray(0, nl).toString().trim();
        buf = buf.subarray(nl + 1);
      }
      while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const payload = buf.subarray(5, 4 + len - buf[4]!);
        buf = buf.subarray(4 + len);
        const r = new WireReader(payload);
        const type = r.byte();
        if (type === 20) {
          r.bytes(16);
          r.nameList();
          seen.hostKeyAlgorithms = r.nameList();
        } else if (type === 30) {
          seen.kexInit = true;
          sock.write(packet(new WireWriter().byte(31).string(script.hostKey!).string(Buffer.alloc(32, 9)).string('not checked').toBuffer()));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, seen };
}

let dir: string;
let ca: TestKey;
let hostKey: TestKey;
let otherKey: TestKey;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-cert-probe-'));
  ca = keygen(dir, 'ca', 'ed25519');
  hostKey = keygen(dir, 'host', 'ed25519');
  otherKey = keygen(dir, 'other', 'ed25519');
});
afterEach(async () => {
  const s = server;
  server = undefined;
  if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CERT_ED25519 = 'ssh-ed25519-cert-v01@openssh.com';

describe('fetchHostCertificate', () => {
  it('offers only certificate host keys and returns K_S of the reply', async () => {
    const cert = sign(dir, ca, hostKey, { id: 'probe', host: true, principals: '127.0.0.1', validity: '-5m:+1h' });
    const { port, seen } = await scripted({ hostKeyAlgorithms: ['ssh-ed25519', CERT_ED25519], hostKey: cert });
    const r = await fetchHostCertificate(connect({ host: '127.0.0.1', port }), 5000);
    expect(r).toEqual({ certificate: cert, algorithm: CERT_ED25519 });
    expect(seen.ident).toMatch(/^SSH-2\.0-provision/);
    expect(seen.hostKeyAlgorithms!.every((a) => a.endsWith('-cert-v01@openssh.com'))).toBe(true);
    expect(seen.kexInit).toBe(true);
  });

  it('says so when the server has no certificate, without a key exchange', async () => {
    const { port, seen } = await scripted({ hostKeyAlgorithms: ['ssh-ed25519', 'rsa-sha2-512'] });
    const r = await fetchHostCertificate(connect({ host: '127.0.0.1', port }), 5000);
    expect(r).toEqual({ none: 'it offers no certificate host key (its host key algorithms: ssh-ed25519,rsa-sha2-512)' });
    expect(seen.kexInit).toBeUndefined();
  });

  it('refuses a reply whose key is not of the negotiated certificate type', async () => {
    const { port } = await scripted({ hostKeyAlgorithms: [CERT_ED25519], hostKey: hostKey.blob });
    await expect(fetchHostCertificate(connect({ host: '127.0.0.1', port }), 5000)).rejects.toThrow('the host sent a ssh-ed25519 host key, not the negotiated ssh-ed25519-cert-v01@openssh.com');
  });

  it('refuses garbage and bounds the wait for a silent server', async () => {
    const garbage = await scripted({ hostKeyAlgorithms: [], raw: Buffer.from('SSH-2.0-x\r\n\xff\xff\xff\xff\x00', 'latin1') });
    await expect(fetchHostCertificate(connect({ host: '127.0.0.1', port: garbage.port }), 5000)).rejects.toThrow(/bad packet length/);
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    const silent = await scripted({ hostKeyAlgorithms: [], silent: true });
    // Not a word from the host: a connection timeout (the level ssh2 gives it), not a host-key verdict.
    await expect(fetchHostCertificate(connect({ host: '127.0.0.1', port: silent.port }), 300)).rejects.toMatchObject({ message: 'Timed out while waiting for handshake', level: 'client-timeout' });
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    const stalled = await scripted({ hostKeyAlgorithms: [], raw: Buffer.from('SSH-2.0-stalls\r\n') });
    await expect(fetchHostCertificate(connect({ host: '127.0.0.1', port: stalled.port }), 300)).rejects.toThrow('no key exchange reply within 0.3s');
  });

  it('bounds what a host may send before its identification', async () => {
    const { port } = await scripted({ hostKeyAlgorithms: [], raw: Buffer.from('banner line\r\n'.repeat(1000)) });
    await expect(fetchHostCertificate(connect({ host: '127.0.0.1', port }), 5000)).rejects.toThrow('no SSH identification string from the host');
  });
});

describe('HostKeyCheck for a host that only a @cert-authority vouches for', () => {
  async function check(cert: Buffer, known: string) {
    const { port } = await scripted({ hostKeyAlgorithms: [CERT_ED25519], hostKey: cert });
    const file = path.join(dir, `kh-${port}`);
    writeFileSync(file, known);
    return HostKeyCheck.prepare({ label: 'web-01', address: '127.0.0.1', port, knownHosts: file, acceptNew: true, timeoutMs: 5000 }, async () => connect({ host: '127.0.0.1', port }));
  }

  it('a valid certificate: ssh2 is asked for its key type, and only the certified key is accepted', async () => {
    const hk = await check(sign(dir, ca, hostKey, { id: 'ok', host: true, principals: '127.0.0.1', validity: '-5m:+1h' }), `@cert-authority * ${ca.pub}\n`);
    expect(hk.algorithms).toEqual(['ssh-ed25519']);
    expect(hk.verify(otherKey.blob)).toBe(false);
    expect(hk.problem).toMatch(/the host's key ssh-ed25519 SHA256:\S+ is not the key of its certificate/);
    expect(hk.verify(hostKey.blob)).toBe(true);
  });

  it.each([
    ['expired', { validity: '20200101:20200102' }, /host certificate refused: certificate "bad" \(serial 0\) expired at/],
    ['wrong principal', { principals: 'web-02' }, /is for "web-02", not for "127\.0\.0\.1"/],
    ['user certificate', { host: false }, /is a user certificate/],
  ] as const)('%s: refused before ssh2 connects, with the reason', async (_what, change, message) => {
    const cert = sign(dir, ca, hostKey, { id: 'bad', host: true, principals: '127.0.0.1', validity: '-5m:+1h', ...change });
    const refused = await check(cert, `@cert-authority * ${ca.pub}\n`).then(
      () => undefined,
      (e: unknown) => e as ConnectionError,
    );
    expect(refused).toBeInstanceOf(ConnectionError);
    expect(refused!.level).toBe('hostkey');
    expect(refused!.message).toMatch(message);
  });

  it('a revoked CA refuses the host; nothing is recorded even with accept_new_host_keys', async () => {
    const cert = sign(dir, ca, hostKey, { id: 'rev', host: true, principals: '127.0.0.1', validity: '-5m:+1h' });
    await expect(check(cert, `@cert-authority * ${ca.pub}\n@revoked * ${ca.pub}\n`)).rejects.toThrow(/which is @revoked at .*:2/);
  });
});
