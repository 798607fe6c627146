import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { PkiError } from './errors.js';
import { WORK_PREFIX } from './layout.js';

/*
 * The `openssl` command of the control machine, run with execFile (argv, no shell). Keys never
 * appear on its command line: they are files (0600) in a private work folder, named by path.
 *
 * Why the command and not an npm library: it is on every Debian/Ubuntu control machine (and
 * scripts/test.mjs installs it), it is what every reader can audit (`openssl ca` with a config of
 * ours), and `openssl ca` sets notBefore/notAfter exactly (we backdate one hour for clock skew).
 * @peculiar/x509 (WebCrypto, well kept) was the alternative: it would keep leaf keys out of any file,
 * but adds a dependency tree (asn1-schema, tsyringe, reflect-metadata) to a tool that runs as root,
 * for a gain the private work folder already gives. Certificates are parsed with node's own
 * crypto.X509Certificate, never by us.
 */

const OPENSSL_TIMEOUT_MS = 60_000;

export interface OpensslResult {
  stdout: string;
  stderr: string;
}

/** Run `openssl ARGS` in `cwd`; a failure names the subcommand and openssl's own message. */
export function openssl(args: string[], opts: { cwd: string; input?: string } = { cwd: process.cwd() }): Promise<OpensslResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      args,
      // No inherited OPENSSL_CONF: every subcommand that reads a config is given ours (-config).
      { cwd: opts.cwd, timeout: OPENSSL_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024, env: { ...process.env, OPENSSL_CONF: '/dev/null' } },
      (err, stdout, stderr) => {
        if (!err) return resolve({ stdout, stderr });
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          return reject(new PkiError('the openssl command is not installed on this machine (provision makes its internal CA with it)', 'apt-get install openssl'));
        }
        const detail = stderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
        reject(new PkiError(`openssl ${args[0]} failed (${(err as { killed?: boolean }).killed ? 'timed out' : `exit ${String(code)}`}): ${detail}`));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

let versionChecked: Promise<string> | undefined;

/**
 * OpenSSL 1.1.1 or 3.x: `openssl ca -rand_serial`, `-addext`-free configs and P-256 are all we use,
 * but LibreSSL's `openssl` (macOS) differs in `ca`; refuse it by name rather than fail obscurely.
 */
export function checkOpensslVersion(): Promise<string> {
  versionChecked ??= openssl(['version'], { cwd: process.cwd() }).then(({ stdout }) => {
    const v = stdout.trim();
    const m = /^OpenSSL (\d+)\.(\d+)\.(\d+)/.exec(v);
    const ok = m !== null && (Number(m[1]) >= 3 || (Number(m[1]) === 1 && Number(m[2]) === 1 && Number(m[3]) >= 1));
    if (!ok) throw new PkiError(`the openssl command is "${v}"; provision's internal CA needs OpenSSL 1.1.1 or 3.x`, 'install OpenSSL (not LibreSSL) and put it first on PATH');
    return v;
  });
  versionChecked.catch(() => (versionChecked = undefined));
  return versionChecked;
}

/**
 * A private scratch folder (0700, mkdtemp) inside the CA folder, removed when `fn` ends, however it
 * ends. Inside the CA folder rather than /tmp: if the process is killed, a leaf key left behind is
 * in the folder that is already as private as the CA key, not in a shared temporary directory.
 */
export async function withWorkDir<T>(pkiDir: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(pkiDir, WORK_PREFIX));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
