/**
 * Real keys, certificates and verdicts from OpenSSH's own ssh-keygen (openssh-client is on every
 * machine that runs the suite), so the host-key tests check our code against OpenSSH, not against
 * our own idea of it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface TestKey {
  /** Private key file (OpenSSH format, no passphrase). */
  file: string;
  /** "type base64", as in a known_hosts line. */
  pub: string;
  type: string;
  blob: Buffer;
}

export function keygen(dir: string, name: string, type: 'ed25519' | 'ecdsa' | 'rsa', bits?: number): TestKey {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', name, '-f', file]);
  return keyOf(file);
}

function keyOf(file: string): TestKey {
  const [t, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
  return { file, pub: `${t} ${b64}`, type: t!, blob: Buffer.from(b64!, 'base64') };
}

/** `ssh-keygen -s CA -I ID [-h] [-n principals] -V validity` on a copy of `key`'s public key; returns the certificate blob. */
export function sign(dir: string, ca: TestKey, key: TestKey, opts: { id: string; host: boolean; principals?: string; validity: string; sigAlg?: string; extra?: string[] }): Buffer {
  const pubCopy = path.join(dir, `${opts.id}.pub`);
  writeFileSync(pubCopy, `${key.pub} ${opts.id}\n`);
  execFileSync('ssh-keygen', [
    '-q', '-s', ca.file, '-I', opts.id,
    ...(opts.host ? ['-h'] : []),
    ...(opts.principals ? ['-n', opts.principals] : []),
    ...(opts.sigAlg ? ['-t', opts.sigAlg] : []),
    '-V', opts.validity, ...(opts.extra ?? []), pubCopy,
  ]);
  return Buffer.from(readFileSync(path.join(dir, `${opts.id}-cert.pub`), 'utf8').trim().split(/\s+/)[1]!, 'base64');
}

/** `ssh-keygen -L` of a certificate blob, for cross-checking our parser. */
export function describeCertificate(dir: string, cert: Buffer, type: string): string {
  const file = path.join(dir, 'describe-cert.pub');
  writeFileSync(file, `${type} ${cert.toString('base64')}\n`);
  return execFileSync('ssh-keygen', ['-L', '-f', file], { encoding: 'utf8' });
}

export interface FoundLine {
  line: number;
  marker: 'none' | 'revoked' | 'cert-authority';
  fingerprint: string;
}

/**
 * The lines OpenSSH finds for `name` in `file`: `ssh-keygen -l -F name -f file` (-l makes it parse
 * each key, as ssh does when it loads known_hosts, so lines whose key it cannot read are not found).
 */
export function sshKeygenFind(file: string, name: string): FoundLine[] {
  const r = spawnSync('ssh-keygen', ['-l', '-F', name, '-f', file], { encoding: 'utf8' });
  const out: FoundLine[] = [];
  const lines = r.stdout.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^# Host .* found: line (\d+) ?(CA|REVOKED)?$/.exec(lines[i]!);
    if (!m) continue;
    const fp = /(SHA256:\S+)/.exec(lines[i + 1] ?? '')?.[1] ?? '';
    out.push({ line: Number(m[1]), marker: m[2] === 'CA' ? 'cert-authority' : m[2] === 'REVOKED' ? 'revoked' : 'none', fingerprint: fp });
  }
  return out;
}

/** `ssh-keygen -H -f file`: hashes every host name in place (removes file.old). */
export function hashFile(file: string): void {
  execFileSync('ssh-keygen', ['-q', '-H', '-f', file], { stdio: 'ignore' });
}
