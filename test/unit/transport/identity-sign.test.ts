/**
 * The identity key signs with a KeyObject made once per file (src/transport/identity-key.ts), not with
 * its PEM text parsed again at every login as ssh2's own `sign` does: the same signatures, for each
 * key type ssh-keygen makes, and logins to a real ssh2 server that checks them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2, { type ParsedKey, Server } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshConnection } from '../../../src/transport/index.js';
import { identityKey } from '../../../src/transport/identity-key.js';
import { loopbackHost } from '../helpers/hosts.ts';

const TYPES = [
  ['ed25519', ['-t', 'ed25519']],
  ['ecdsa', ['-t', 'ecdsa', '-b', '256']],
  ['rsa', ['-t', 'rsa', '-b', '2048']],
] as const;

let dir: string;
let server: Server;
let port: number;
const publicKeys: ParsedKey[] = [];

function parsed(data: Buffer): ParsedKey {
  const k = ssh2.utils.parseKey(data);
  if (k instanceof Error) throw k;
  return Array.isArray(k) ? k[0]! : k;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-sign-'));
  for (const [name, args] of TYPES) {
    execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', name, '-f', path.join(dir, name)]);
    publicKeys.push(parsed(readFileSync(path.join(dir, `${name}.pub`))));
  }
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host')]);
  server = new Server({ hostKeys: [readFileSync(path.join(dir, 'host'))] }, (client) => {
    client.on('authentication', (ctx) => {
      const known = ctx.method === 'publickey' ? publicKeys.find((k) => k.type === ctx.key.algo && k.getPublicSSH().equals(ctx.key.data)) : undefined;
      if (!known || ctx.method !== 'publickey') return ctx.reject(['publickey']);
      if (!ctx.signature) return ctx.accept();
      return known.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject();
    });
    client.on('ready', () => client.end());
    client.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as AddressInfo).port;
  writeFileSync(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(path.join(dir, 'host.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

function ours(name: string): ParsedKey {
  const k = identityKey(path.join(dir, name), undefined);
  if (k.kind !== 'key') throw new Error(`${name}: ${k.kind}`);
  return k.key;
}

describe('the identity key signs once parsed', () => {
  it.each(TYPES.map(([n]) => n))('%s: the signatures ssh2 itself makes (and its verify accepts), with each hash it asks for', (name) => {
    const key = ours(name);
    const own = parsed(readFileSync(path.join(dir, name)));
    const pub = publicKeys[TYPES.findIndex(([n]) => n === name)]!;
    const data = Buffer.from(`session id and userauth request of ${name}`);
    for (const algo of name === 'rsa' ? [undefined, 'sha1', 'sha256', 'sha512'] : [undefined]) {
      const sig = key.sign(data, algo);
      expect(sig).toBeInstanceOf(Buffer);
      expect(pub.verify(data, sig, algo)).toBe(true);
      // ed25519 and RSA (PKCS #1 v1.5) are deterministic: byte for byte ssh2's; ECDSA is not.
      if (name !== 'ecdsa') expect(sig.equals(own.sign(data, algo))).toBe(true);
    }
  });

  it('does not sign from the PEM text: with it gone from the parsed key, the key still signs', () => {
    const key = ours('ed25519');
    const pemSymbol = Object.getOwnPropertySymbols(key).find((s) => s.description === 'Private key PEM')!;
    const pem = (key as unknown as Record<symbol, unknown>)[pemSymbol];
    try {
      (key as unknown as Record<symbol, unknown>)[pemSymbol] = null; // ssh2's own sign: "No private key available"
      const sig = key.sign(Buffer.from('x'));
      expect(sig).toBeInstanceOf(Buffer);
      expect(publicKeys[0]!.verify(Buffer.from('x'), sig)).toBe(true);
    } finally {
      (key as unknown as Record<symbol, unknown>)[pemSymbol] = pem;
    }
  });

  it.each(TYPES.map(([n]) => n))('%s: logs in to a server that checks the signature, twice', async (name) => {
    for (let i = 0; i < 2; i++) {
      const h = loopbackHost({ user: 'deploy', port, identityFile: path.join(dir, name), knownHosts: path.join(dir, 'known_hosts') });
      (await SshConnection.connect(h)).close();
    }
  });
});
