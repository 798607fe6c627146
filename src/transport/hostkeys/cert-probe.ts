/**
 * Fetches a server's host certificate with the first half of an SSH key exchange of our own: ssh2
 * 1.17 cannot negotiate certificate host keys, so before ssh2 connects we open a second stream to
 * the same sshd, send a KEXINIT that offers only *-cert-v01@openssh.com host-key algorithms and our
 * half of the key exchange, and read K_S (the certificate) from the server's KEX reply. Everything
 * up to NEWKEYS is unencrypted (RFC 4253 §7), so no cipher is ever run; we hang up after the reply.
 *
 * Nothing read here is trusted by itself: the certificate is checked against the @cert-authority
 * keys, and the key it certifies must be exactly the key ssh2's own handshake then proves the server
 * holds (see verifier.ts). So this stream may cross an untrusted network or a jump host.
 */
import { createDiffieHellmanGroup, createECDH, generateKeyPairSync, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { CERT_HOST_KEY_ALGORITHMS } from './certificate.js';
import { WireError, WireReader, WireWriter } from './wire.js';

const MSG_DISCONNECT = 1;
const MSG_IGNORE = 2;
const MSG_UNIMPLEMENTED = 3;
const MSG_DEBUG = 4;
const MSG_KEXINIT = 20;
const MSG_KEX_INIT = 30; // KEXDH_INIT / KEX_ECDH_INIT
const MSG_KEX_REPLY = 31; // KEXDH_REPLY / KEX_ECDH_REPLY
const DISCONNECT_BY_APPLICATION = 11;

/** Our half of each key exchange we offer: the bytes of message 30 after its type byte. */
const KEX_METHODS: Record<string, () => Buffer> = {
  'curve25519-sha256': x25519Init,
  'curve25519-sha256@libssh.org': x25519Init,
  'ecdh-sha2-nistp256': () => ecdhInit('prime256v1'),
  'ecdh-sha2-nistp384': () => ecdhInit('secp384r1'),
  'ecdh-sha2-nistp521': () => ecdhInit('secp521r1'),
  'diffie-hellman-group14-sha256': () => dhInit('modp14'),
  'diffie-hellman-group16-sha512': () => dhInit('modp16'),
};

function x25519Init(): Buffer {
  const { publicKey } = generateKeyPairSync('x25519');
  const x = publicKey.export({ format: 'jwk' }).x!;
  return new WireWriter().string(Buffer.from(x, 'base64url')).toBuffer();
}
function ecdhInit(curve: string): Buffer {
  const ecdh = createECDH(curve);
  return new WireWriter().string(ecdh.generateKeys()).toBuffer();
}
function dhInit(group: string): Buffer {
  const e = createDiffieHellmanGroup(group).generateKeys();
  // mpint: a leading zero byte when the top bit is set, so the number stays positive.
  return new WireWriter().string(e[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), e]) : e).toBuffer();
}

/** Broad lists: we never use the cipher, but the server hangs up when nothing in a category matches. */
const CIPHERS = ['chacha20-poly1305@openssh.com', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr'];
const MACS = ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512', 'hmac-sha1'];
const COMPRESSION = ['none', 'zlib@openssh.com'];

/** Bounds on what a server may send before its KEX reply (a hostile one must not fill our memory). */
const MAX_PREAMBLE_BYTES = 8192;
const MAX_PACKET_BYTES = 256 * 1024;
const MAX_PACKETS = 64;

export type CertificateProbe =
  | { certificate: Buffer; algorithm: string }
  /** The server offers no certificate host key we asked for; why (for the message). */
  | { none: string };

export class CertificateProbeError extends Error {}

function packet(payload: Buffer): Buffer {
  const block = 8;
  let padding = block - ((4 + 1 + payload.length) % block);
  if (padding < 4) padding += block;
  return new WireWriter()
    .uint32(1 + payload.length + padding)
    .byte(padding)
    .raw(payload)
    .raw(randomBytes(padding))
    .toBuffer();
}

function kexinit(): Buffer {
  const w = new WireWriter().byte(MSG_KEXINIT).raw(randomBytes(16));
  w.nameList(Object.keys(KEX_METHODS)).nameList(CERT_HOST_KEY_ALGORITHMS);
  w.nameList(CIPHERS).nameList(CIPHERS).nameList(MACS).nameList(MACS).nameList(COMPRESSION).nameList(COMPRESSION);
  return w.nameList([]).nameList([]).boolean(false).uint32(0).toBuffer();
}

/** RFC 4253 §7.1: the first of the client's names that the server also lists. */
function firstCommon(ours: readonly string[], theirs: readonly string[]): string | undefined {
  return ours.find((n) => theirs.includes(n));
}

/**
 * Runs the exchange on `stream` (a fresh TCP connection to the sshd, or a channel forwarded by a
 * jump host) and always closes it. Rejects with CertificateProbeError on a protocol failure or
 * after `timeoutMs`.
 */
export function fetchHostCertificate(stream: Duplex, timeoutMs: number): Promise<CertificateProbe> {
  return new Promise<CertificateProbe>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let identified = false;
    let packets = 0;
    let kexMethod: string | undefined;
    let hostKeyAlgorithm: string | undefined;
    let ignoreGuessedPacket = false;
    let settled = false;

    const finish = (err: Error | undefined, result?: CertificateProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.removeListener('data', onData);
      if (!err && stream.writable) {
        // A polite hang-up; the server logs it as a closed pre-authentication connection.
        stream.write(packet(new WireWriter().byte(MSG_DISCONNECT).uint32(DISCONNECT_BY_APPLICATION).string('certificate fetched').string('').toBuffer()));
      }
      stream.end();
      stream.destroy();
      if (err) reject(err);
      else resolve(result!);
    };
    const fail = (why: string) => finish(new CertificateProbeError(why));
    let received = 0;
    const timer = setTimeout(() => {
      // Nothing at all from the host is a timeout of the connection (as ssh2 would report it), not a host-key problem.
      if (!received) finish(Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }));
      else fail(`no key exchange reply within ${timeoutMs / 1000}s`);
    }, timeoutMs);

    const onPacket = (payload: Buffer) => {
      const r = new WireReader(payload);
      const type = r.byte('message type');
      if (type === MSG_IGNORE || type === MSG_DEBUG || type === MSG_UNIMPLEMENTED) return;
      if (type === MSG_DISCONNECT) {
        r.uint32('reason');
        const why = r.string('description').toString('utf8').slice(0, 300);
        if (!kexMethod || !hostKeyAlgorithm) return finish(undefined, { none: `the host hung up: ${why}` });
        return fail(`the host hung up during the key exchange: ${why}`);
      }
      if (type === MSG_KEXINIT && !kexMethod) {
        r.bytes(16, 'cookie');
        const kex = r.nameList('kex algorithms');
        const hostKeys = r.nameList('host key algorithms');
        for (let i = 0; i < 8; i++) r.nameList('algorithm list');
        const guessFollows = r.boolean('first_kex_packet_follows');
        kexMethod = firstCommon(Object.keys(KEX_METHODS), kex);
        hostKeyAlgorithm = firstCommon(CERT_HOST_KEY_ALGORITHMS, hostKeys);
        if (!hostKeyAlgorithm) return finish(undefined, { none: `it offers no certificate host key (its host key algorithms: ${hostKeys.join(',')})` });
        if (!kexMethod) return fail(`no key exchange method in common (the host offers ${kex.join(',')})`);
        // A server that guessed and guessed wrong sends a key exchange packet we must skip (RFC 4253 §7).
        ignoreGuessedPacket = guessFollows && (kex[0] !== kexMethod || hostKeys[0] !== hostKeyAlgorithm);
        stream.write(packet(Buffer.concat([Buffer.from([MSG_KEX_INIT]), KEX_METHODS[kexMethod]!()])));
        return;
      }
      if (type === MSG_KEX_REPLY && kexMethod) {
        if (ignoreGuessedPacket) {
          ignoreGuessedPacket = false;
          return;
        }
        const hostKey = r.string('host key');
        const keyType = new WireReader(hostKey).text('host key type');
        const expected = hostKeyAlgorithm!.replace(/^rsa-sha2-(256|512)-/, 'ssh-rsa-');
        if (keyType !== expected) return fail(`the host sent a ${keyType} host key, not the negotiated ${hostKeyAlgorithm}`);
        return finish(undefined, { certificate: Buffer.from(hostKey), algorithm: hostKeyAlgorithm! });
      }
      return fail(`unexpected message ${type} during the key exchange`);
    };

    const onData = (chunk: Buffer) => {
      received += chunk.length;
      buf = Buffer.concat([buf, chunk]);
      try {
        if (!identified) {
          // RFC 4253 §4.2: the server may send other lines before its identification string.
          for (;;) {
            const nl = buf.indexOf(0x0a);
            if (received - buf.length + (nl < 0 ? buf.length : nl) > MAX_PREAMBLE_BYTES) return fail('no SSH identification string from the host');
            if (nl < 0) return;
            const line = buf.subarray(0, nl).toString('latin1').replace(/\r$/, '');
            buf = buf.subarray(nl + 1);
            if (line.startsWith('SSH-')) {
              if (!/^SSH-(2\.0|1\.99)-/.test(line)) return fail(`the host speaks ${line.slice(0, 40)}, not SSH 2`);
              identified = true;
              stream.write(packet(kexinit()));
              break;
            }
          }
        }
        while (buf.length >= 5) {
          const length = buf.readUInt32BE(0);
          if (length < 5 || length > MAX_PACKET_BYTES) return fail(`bad packet length ${length} from the host`);
          if (buf.length < 4 + length) return;
          const padding = buf[4]!;
          if (padding >= length) return fail('bad packet padding from the host');
          const payload = buf.subarray(5, 4 + length - padding);
          buf = buf.subarray(4 + length);
          if (++packets > MAX_PACKETS) return fail('too many packets before the key exchange reply');
          onPacket(payload);
          if (settled) return;
        }
      } catch (err) {
        if (err instanceof WireError) return fail(`malformed packet from the host: ${err.message}`);
        finish(err as Error);
      }
    };

    stream.on('data', onData);
    stream.once('error', (err: Error & { code?: string }) => finish(err));
    stream.once('close', () => fail('the host closed the connection during the key exchange'));
    stream.write(`SSH-2.0-provision_hostcert\r\n`);
  });
}
