/**
 * Host certificates made by ssh-keygen (-s CA -h -n … -V …), read by our parser and judged by our
 * checker: each rule of OpenSSH's sshkey_cert_check_host and PROTOCOL.certkeys, and the CA's
 * signature for every CA key type node:crypto verifies. Parsed fields are cross-checked against
 * `ssh-keygen -L`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHostCertificate, fingerprint, parseCertificate, parseKnownHosts, type Certificate, type KnownHostsEntry } from '../../../src/transport/hostkeys/index.ts';
import { describeCertificate, keygen, sign, type TestKey } from './ssh-keygen.ts';

let dir: string;
let ca: TestKey;
let otherCa: TestKey;
let hostKey: TestKey;
let n = 0;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-host-certs-'));
  ca = keygen(dir, 'ca', 'ed25519');
  otherCa = keygen(dir, 'other-ca', 'ed25519');
  hostKey = keygen(dir, 'host', 'ed25519');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function entries(lines: string[]): { authorities: KnownHostsEntry[]; revoked: KnownHostsEntry[] } {
  const parsed = parseKnownHosts(lines.join('\n'), 'known_hosts');
  expect(parsed.unreadable).toEqual([]);
  return { authorities: parsed.entries.filter((e) => e.marker === 'cert-authority'), revoked: parsed.entries.filter((e) => e.marker === 'revoked') };
}

interface Made {
  blob: Buffer;
  cert: Certificate;
}
function make(opts: { by?: TestKey; key?: TestKey; host?: boolean; principals?: string; validity?: string; sigAlg?: string; extra?: string[] } = {}): Made {
  const blob = sign(dir, opts.by ?? ca, opts.key ?? hostKey, {
    id: `cert-${++n}`,
    host: opts.host ?? true,
    principals: opts.principals === undefined ? '10.0.0.5,web-01.example.com' : opts.principals || undefined,
    validity: opts.validity ?? '-5m:+1h',
    sigAlg: opts.sigAlg,
    extra: opts.extra,
  });
  return { blob, cert: parseCertificate(blob) };
}

const judge = (cert: Certificate, known = [`@cert-authority * ${ca.pub}`], principal = '10.0.0.5') =>
  checkHostCertificate(cert, { principal, ...entries(known), now: new Date() });
const reason = (v: ReturnType<typeof judge>) => (v.ok ? 'accepted' : v.reason);

describe('host certificates from ssh-keygen', () => {
  it('parses what ssh-keygen -L shows, and certifies exactly the host key', () => {
    const { blob, cert } = make({ validity: '20300101:20300102' });
    const shown = describeCertificate(dir, blob, cert.type);
    expect(shown).toContain(`Type: ${cert.type} host certificate`);
    expect(shown).toContain(`Key ID: "cert-${n}"`);
    expect(shown).toMatch(/Principals: \n\s+10\.0\.0\.5\n\s+web-01\.example\.com\n/);
    expect(shown).toContain(`Signing CA: ED25519 ${fingerprint(ca.blob)}`);
    expect(cert.principals).toEqual(['10.0.0.5', 'web-01.example.com']);
    expect(cert.certType).toBe(2);
    expect(cert.key.blob.equals(hostKey.blob)).toBe(true);
    expect(cert.signatureKey.blob.equals(ca.blob)).toBe(true);
    expect(new Date(Number(cert.validAfter) * 1000).toISOString()).toBe(new Date(2030, 0, 1).toISOString());
  });

  it('valid: a host certificate from a listed CA, for the name we connect to, now', () => {
    const v = judge(make().cert);
    expect(v.ok).toBe(true);
    expect(v.ok && v.authority.line).toBe(1);
    expect(reason(judge(make().cert, [`@cert-authority * ${ca.pub}`], 'web-01.example.com'))).toBe('accepted');
  });

  it('expired', () => {
    expect(reason(judge(make({ validity: '20200101:20200102' }).cert))).toMatch(/expired at 2020-01-0[12]T/);
  });

  it('not yet valid', () => {
    expect(reason(judge(make({ validity: '+1d:+2d' }).cert))).toMatch(/is not valid before \d{4}-/);
  });

  it('wrong principal', () => {
    expect(reason(judge(make({ principals: 'web-02.example.com' }).cert))).toBe(`certificate "cert-${n}" (serial 0) is for "web-02.example.com", not for "10.0.0.5"`);
  });

  it('no principals at all (OpenSSH would take it for any host; we do not)', () => {
    expect(reason(judge(make({ principals: '' }).cert))).toContain('lists no principals');
  });

  it('a principal is a name, not a pattern', () => {
    expect(reason(judge(make({ principals: '10.0.0.*' }).cert))).toContain('not for "10.0.0.5"');
  });

  it('a user certificate is not a host certificate', () => {
    expect(reason(judge(make({ host: false }).cert))).toContain('is a user certificate, not a host certificate');
  });

  it('wrong CA: signed by a key that is not a @cert-authority', () => {
    expect(reason(judge(make({ by: otherCa }).cert))).toMatch(/is signed by CA ssh-ed25519 SHA256:\S+, which is not a @cert-authority for this host \(those are at known_hosts:1\)/);
  });

  it('a CA listed for other names only does not vouch', () => {
    const parsed = parseKnownHosts(`@cert-authority *.example.com ${ca.pub}`, 'known_hosts');
    expect(parsed.entries).toHaveLength(1);
    // lookupHost gives the checker only the CA lines whose patterns match the host; here, none.
    expect(reason(checkHostCertificate(make().cert, { principal: '10.0.0.5', authorities: [], revoked: [], now: new Date() }))).toContain('not a @cert-authority');
  });

  it('revoked CA', () => {
    expect(reason(judge(make().cert, [`@cert-authority * ${ca.pub}`, `@revoked * ${ca.pub}`]))).toContain('which is @revoked at known_hosts:2');
  });

  it('revoked host key, even inside a valid certificate', () => {
    expect(reason(judge(make().cert, [`@cert-authority * ${ca.pub}`, `@revoked * ${hostKey.pub}`]))).toMatch(/the key of certificate .* is @revoked at known_hosts:2/);
  });

  it('critical options (none are defined for host certificates) are refused', () => {
    expect(reason(judge(make({ extra: ['-O', 'force-command=/bin/true'] }).cert))).toContain('has critical options (force-command)');
  });

  it('a certificate changed after signing (principal swapped) fails its signature', () => {
    const { blob } = make({ principals: '10.0.0.6' });
    const at = blob.indexOf(Buffer.from('10.0.0.6'));
    const forged = Buffer.from(blob);
    forged.write('10.0.0.5', at, 'latin1');
    expect(reason(judge(parseCertificate(forged)))).toMatch(/its signature by CA .* is not valid \(signature does not verify\)/);
  });

  it('truncated and garbage blobs are refused with a reason, not a crash', () => {
    const { blob } = make();
    expect(() => parseCertificate(blob.subarray(0, blob.length - 10))).toThrow(/truncated/);
    expect(() => parseCertificate(hostKey.blob)).toThrow('ssh-ed25519 is not a certificate type');
    expect(() => parseCertificate(Buffer.concat([blob, Buffer.from([0])]))).toThrow('bytes after the certificate signature');
  });
});

describe('CA key types and signature algorithms', () => {
  const cases: Array<{ ca: ['ed25519' | 'ecdsa' | 'rsa', number?]; sigAlg?: string; host: ['ed25519' | 'ecdsa' | 'rsa', number?]; ok: boolean | string }> = [
    { ca: ['ecdsa', 256], host: ['ed25519'], ok: true },
    { ca: ['ecdsa', 384], host: ['ecdsa', 256], ok: true },
    { ca: ['ecdsa', 521], host: ['rsa', 2048], ok: true },
    { ca: ['rsa', 2048], host: ['ed25519'], ok: true }, // ssh-keygen signs with rsa-sha2-512 by default
    { ca: ['rsa', 2048], sigAlg: 'rsa-sha2-256', host: ['ecdsa', 384], ok: true },
    { ca: ['rsa', 2048], sigAlg: 'ssh-rsa', host: ['ed25519'], ok: 'signature type ssh-rsa is not allowed' },
  ];
  it.each(cases.map((c, i) => [i + 1, `${c.ca.join('-')} CA ${c.sigAlg ?? ''} → ${c.host.join('-')} host key`, c] as const))('case %i: %s', (i, _what, c) => {
    const caKey = keygen(dir, `ca-${i}`, c.ca[0], c.ca[1]);
    const key = keygen(dir, `host-${i}`, c.host[0], c.host[1]);
    const { cert } = make({ by: caKey, key, sigAlg: c.sigAlg });
    expect(cert.key.blob.equals(key.blob)).toBe(true);
    const v = judge(cert, [`@cert-authority * ${caKey.pub}`]);
    if (c.ok === true) expect(reason(v)).toBe('accepted');
    else expect(reason(v)).toContain(c.ok);
  });
});
