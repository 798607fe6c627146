import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openssl } from './openssl.js';

/*
 * Signing, for the CA's own certificate (self-signed) and for leaves: `openssl ca` with a config of
 * ours, in a private work folder. `openssl ca` rather than `openssl x509 -req`: it sets notBefore
 * and notAfter exactly (we backdate an hour so a host whose clock is a little behind accepts a
 * certificate made a second ago) and draws a random serial itself (-rand_serial, 159 bits), and it
 * never copies extensions from the request (copy_extensions = none): what a certificate may do is
 * decided here only.
 */

/** Backdating of notBefore: hosts whose clock lags the control machine's still accept a new certificate. */
export const BACKDATE_MS = 60 * 60 * 1000;

export interface Extensions {
  /** openssl x509v3 config lines, e.g. "basicConstraints = critical, CA:FALSE". */
  lines: string[];
  /** [alt_names] entries, e.g. "DNS.1 = web-01". */
  altNames?: string[];
}

export interface SignRequest {
  workDir: string;
  /** The private key of the certificate's subject (a file 0600 in workDir). */
  subjectKeyFile: string;
  /** "/O=provision/CN=web-01": values were validated to hold none of / = + , \ " and no newline. */
  subject: string;
  /** The issuer's certificate and key; absent: self-signed (the CA's own certificate). */
  issuer?: { certFile: string; keyFile: string };
  extensions: Extensions;
  notBefore: Date;
  notAfter: Date;
}

/** ASN.1 time as openssl ca takes it: UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5). */
export function opensslTime(d: Date): string {
  const iso = d.toISOString(); // 2026-01-02T03:04:05.678Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, ''); // 20260102030405
  return (d.getUTCFullYear() < 2050 ? digits.slice(2) : digits) + 'Z';
}

function config(ext: Extensions): string {
  return [
    '[ ca ]',
    'default_ca = provision_ca',
    '[ provision_ca ]',
    'database = index.txt',
    'new_certs_dir = .',
    // Named because openssl 3.0 looks it up even with -rand_serial; the file is never made.
    'serial = serial.txt',
    'default_md = sha256',
    'policy = policy_any',
    'unique_subject = no',
    'copy_extensions = none',
    'email_in_dn = no',
    'preserve = yes',
    '[ policy_any ]',
    'organizationName = optional',
    'commonName = supplied',
    '[ req ]',
    'distinguished_name = req_dn',
    'string_mask = utf8only',
    '[ req_dn ]',
    '[ extensions ]',
    ...ext.lines,
    ...(ext.altNames?.length ? ['subjectAltName = @alt_names', '[ alt_names ]', ...ext.altNames] : []),
    '',
  ].join('\n');
}

/** Make the certificate; returns its PEM. Keys are named by path only, never passed on argv. */
export async function signCertificate(req: SignRequest): Promise<string> {
  const cwd = req.workDir;
  const file = (name: string) => path.join(cwd, name);
  writeFileSync(file('openssl.cnf'), config(req.extensions), { mode: 0o600 });
  writeFileSync(file('index.txt'), '', { mode: 0o600 });
  await openssl(['req', '-new', '-config', 'openssl.cnf', '-key', req.subjectKeyFile, '-subj', req.subject, '-out', 'request.csr'], { cwd });
  await openssl(
    [
      'ca', '-batch', '-notext', '-rand_serial', '-config', 'openssl.cnf', '-extensions', 'extensions',
      '-startdate', opensslTime(req.notBefore), '-enddate', opensslTime(req.notAfter),
      ...(req.issuer ? ['-cert', req.issuer.certFile, '-keyfile', req.issuer.keyFile] : ['-selfsign', '-keyfile', req.subjectKeyFile]),
      '-in', 'request.csr', '-out', 'certificate.pem',
    ],
    { cwd },
  );
  return readFileSync(file('certificate.pem'), 'utf8');
}
