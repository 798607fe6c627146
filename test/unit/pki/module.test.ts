/**
 * internal_tls: a host's certificate from the internal CA and the CA bundle, planned against what the
 * host holds. The CA is real (openssl, in a temporary folder); openssl verifies what was issued.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyPredictedState, type Command, type ModuleContext, type Probe, type ProbeResult } from '../../../src/modules/contract.ts';
import { getModule } from '../../../src/modules/registry.ts';
import { caBundle, ensureCa, issueLeaf, type Ca } from '../../../src/pki/index.ts';
import { internalTlsModule, leafFileState, parseLeafFileState, type InternalTlsParams } from '../../../src/modules/internal-tls.ts';
import { debianFacts, testHost } from '../modules/fixtures.ts';
import { opensslSync, tempRoot } from './helpers.ts';

const tmp = tempRoot('module');
afterAll(() => tmp.cleanup());

const CERT = '/etc/nginx/tls/backend.pem';
const CA_FILE = '/etc/haproxy/backend-ca.pem';
const NAMES = ['web-01', '10.77.0.11'];

/** A context whose probes answer from `answers` (probe key → raw result), as the executor's batch would. */
function ctxFor(answers: Record<string, ProbeResult>, check = false): ModuleContext {
  return {
    host: testHost(),
    facts: debianFacts(),
    check,
    predicted: emptyPredictedState(),
    read: <T,>(p: Probe<T>) => p.parse(answers[p.key]),
    run: async () => ({ code: 1, stdout: 'no host in a unit test' }),
  };
}

/** The host's combined file as the leaf probe prints it: mode and owner, then the certificate part only. */
function leafAnswer(certPem: string, mode = '600', owner = 'root:root'): Record<string, ProbeResult> {
  return { [leafFileState(CERT).key]: { code: 0, stdout: `${mode} ${owner}\n${certPem}` } };
}

function caFileAnswer(content: string, mode = '644'): Record<string, ProbeResult> {
  return { [`file:c:${CA_FILE}`]: { code: 0, stdout: `file ${mode} root root ${content.length} -\n${Buffer.from(content).toString('base64')}` } };
}

async function plan(params: InternalTlsParams, ctx: ModuleContext) {
  return internalTlsModule.plan(internalTlsModule.schema.parse(params), ctx);
}

function shell(c: Command): { cmd: string; stdin: string } {
  if (c.kind !== 'shell') throw new Error('expected a shell command');
  return { cmd: c.cmd, stdin: String(c.stdin ?? '') };
}

let caPromise: Promise<Ca> | undefined;
const dir = tmp.fresh('site');
const ca = () => (caPromise ??= ensureCa(dir, { label: 'site' }));

describe('internal_tls', () => {
  it('is a registered module', () => {
    expect(getModule('internal_tls')).toBe(internalTlsModule);
  });

  it('issues a certificate for the names when the host has none: certificate and key in one 0600 file, the key on stdin only', async () => {
    const p = await plan({ pki_dir: dir, ca_label: 'site', cert_file: CERT, names: NAMES }, ctxFor({}));
    expect(p.changes).toEqual([{ kind: 'certificate', target: CERT, action: 'issue (no certificate on the host)', sensitive: true }]);
    expect(p.commands).toHaveLength(1);
    const { cmd, stdin } = shell(p.commands[0]!);
    expect(cmd).not.toContain('PRIVATE KEY');
    expect(cmd).toContain('chmod 600');
    expect(stdin).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----\n$/);
    // openssl, not our parser, says it chains to the CA and names the host and its address.
    const work = mkdtempSync(path.join(tmpdir(), 'provision-pki-leaf-'));
    writeFileSync(path.join(work, 'leaf.pem'), stdin);
    writeFileSync(path.join(work, 'ca.pem'), caBundle(await ca()));
    const verify = opensslSync(['verify', '-purpose', 'sslserver', '-verify_hostname', 'web-01', '-CAfile', path.join(work, 'ca.pem'), path.join(work, 'leaf.pem')]);
    expect(verify.out).toContain(': OK');
    expect(new X509Certificate(stdin).subjectAltName).toBe('DNS:web-01, IP Address:10.77.0.11');
  });

  it('keeps a good certificate: no change, no key, no signature', async () => {
    const leaf = await issueLeaf(await ca(), { names: NAMES });
    const p = await plan({ pki_dir: dir, cert_file: CERT, names: NAMES }, ctxFor(leafAnswer(leaf.certPem)));
    expect(p.changes).toEqual([]);
    expect(p.commands).toEqual([]);
  });

  it('re-issues a certificate within 30 days of its end, and one for other names', async () => {
    const short = await issueLeaf(await ca(), { names: NAMES, validityDays: 20 });
    const p = await plan({ pki_dir: dir, cert_file: CERT, names: NAMES }, ctxFor(leafAnswer(short.certPem)));
    expect(p.changes[0]!.action).toMatch(/^issue \(ends on .*, within 30 days\)$/);
    expect(p.commands).toHaveLength(1);
    const kept = await plan({ pki_dir: dir, cert_file: CERT, names: NAMES, renew_before_days: 10 }, ctxFor(leafAnswer(short.certPem)));
    expect(kept.changes).toEqual([]);
    const moved = await plan({ pki_dir: dir, cert_file: CERT, names: ['web-01', '10.77.0.99'] }, ctxFor(leafAnswer(short.certPem)));
    expect(moved.changes[0]!.action).toMatch(/^issue \(lacks 10\.77\.0\.99; names 10\.77\.0\.11 no longer wanted\)$/);
  });

  it('replaces a certificate some other CA signed', async () => {
    const other = await issueLeaf(await ensureCa(tmp.fresh('other')), { names: NAMES });
    const p = await plan({ pki_dir: dir, cert_file: CERT, names: NAMES }, ctxFor(leafAnswer(other.certPem)));
    expect(p.changes[0]!.action).toMatch(/^issue \(not signed by the internal CA/);
  });

  it('puts a loosened file back to 0600 root without issuing again', async () => {
    const leaf = await issueLeaf(await ca(), { names: NAMES });
    const p = await plan({ pki_dir: dir, cert_file: CERT, names: NAMES }, ctxFor(leafAnswer(leaf.certPem, '644')));
    expect(p.changes).toEqual([{ kind: 'file', target: CERT, action: 'mode/owner 644 root:root → 600 root:root' }]);
    expect(shell(p.commands[0]!).stdin).toBe('');
  });

  it('gives the file to the server that reads its key (cert_owner: mysql), still 0600, and keeps it so', async () => {
    const mine = { pki_dir: dir, cert_file: CERT, names: NAMES, cert_owner: 'mysql', cert_group: 'mysql' };
    const fresh = await plan(mine, ctxFor({}));
    expect(shell(fresh.commands[0]!).cmd).toContain("mysql:mysql");
    expect(shell(fresh.commands[0]!).cmd).toContain('chmod 600');
    const leaf = await issueLeaf(await ca(), { names: NAMES });
    // A root-owned file (as a default internal_tls would leave it) is handed over without a new key.
    const handed = await plan(mine, ctxFor(leafAnswer(leaf.certPem)));
    expect(handed.changes).toEqual([{ kind: 'file', target: CERT, action: 'mode/owner 600 root:root → 600 mysql:mysql' }]);
    expect((await plan(mine, ctxFor(leafAnswer(leaf.certPem, '600', 'mysql:mysql')))).changes).toEqual([]);
  });

  it('writes the CA bundle, then leaves it be', async () => {
    const bundle = caBundle(await ca());
    const first = await plan({ pki_dir: dir, ca_file: CA_FILE }, ctxFor({}));
    expect(first.changes.map((c) => `${c.target} ${c.action}`)).toEqual([`${CA_FILE} create`]);
    expect(shell(first.commands[0]!).stdin).toBe(bundle);
    const again = await plan({ pki_dir: dir, ca_file: CA_FILE }, ctxFor(caFileAnswer(bundle)));
    expect(again.changes).toEqual([]);
  });

  it('in check mode predicts without making a CA or a key', async () => {
    const none = tmp.fresh('never');
    const p = await plan({ pki_dir: none, cert_file: CERT, ca_file: CA_FILE, names: NAMES }, ctxFor({}, true));
    expect(p.changes.map((c) => `${c.target} ${c.action}`)).toEqual([`${CA_FILE} create`, `${CERT} issue (no certificate on the host)`]);
    expect(p.commands).toEqual([]);
    expect(existsSync(none)).toBe(false);
  });

  it('refuses a certificate without names', () => {
    expect(() => internalTlsModule.schema.parse({ pki_dir: dir, cert_file: CERT })).toThrow(/cert_file needs names/);
  });

  it('reads only the certificate part of the host file', () => {
    expect(leafFileState(CERT).script).toContain("sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p'");
    expect(parseLeafFileState({ code: 0, stdout: 'absent\n' })).toEqual({ exists: false });
    expect(parseLeafFileState({ code: 0, stdout: '600 root:root\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n' })).toEqual({
      exists: true,
      mode: '600',
      owner: 'root:root',
      certPem: '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n',
    });
  });
});
