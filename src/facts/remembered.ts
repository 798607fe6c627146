import { createHash } from 'node:crypto';
import { quote } from '../util/quote.js';
import { mask } from '../util/secrets.js';
import type { CommandTimeoutError } from '../transport/index.js';

/**
 * A converged host in one round trip after connecting. The first state read of a run (every probe of
 * every play) is kept on the host as its script (host-paths.ts STATE_READ_FILE), and the next run's
 * fact script runs it again right after the facts, with a new nonce. Which probes a run needs depends
 * on the facts, which the controller only has once that round trip is back; so the answers are used
 * only when the script the host ran (its sha256, taken by the host itself) is exactly the script this
 * run would send for the facts it just read. Anything else (the playbook, the vars, a fact a task
 * depends on changed; no file yet) costs the second round trip of before, which keeps its script for next time.
 */

/** What the host answered to its kept read, in the facts' round trip. */
export interface RememberedRead {
  /** sha256 (hex) of the script as the host read it from its file. */
  hash: string;
  nonce: string;
  /** The output of the kept script only (the facts' frames cut off before it). */
  stdout: string;
  stderr: string;
  /** The kept read ran out of the probe_timeout it shared with the facts: its answers are not used. */
  timeout?: CommandTimeoutError;
}

/** Where a session keeps its state read, and whether this run may write it (not under --check). */
export interface RememberOptions {
  file: string;
  store: boolean;
}

/** The hash the host prints for a kept batch template (its file holds the template and a newline). */
export const templateHash = (template: string): string => createHash('sha256').update(`${template}\n`).digest('hex');

const marker = (nonce: string) => `\n@@${nonce} remembered `;

/**
 * Shell (after the facts, N set): run the kept read when it is safe to run as who reads it: a plain
 * file, not a link, owned by this user, as is its folder, neither writable by group or others (else
 * another user could make root run a script of theirs). Its hash first, then its frames.
 */
export function rememberedReadSection(file: string): string {
  const f = quote(file);
  const dir = quote(file.replace(/\/[^/]*$/, '') || '/');
  return (
    // A failing find (none, or another one) counts as "writable by others": the check fails closed.
    `if [ -f ${f} ] && [ ! -L ${f} ] && [ -O ${f} ] && [ -O ${dir} ] && w=$(find ${f} ${dir} -prune -perm /022 2>/dev/null) && [ -z "$w" ]; then ` +
    `h=$(sha256sum < ${f}) && printf '\\n@@%s remembered %s\\n' "$N" "\${h%% *}" && N=$N sh ${f} </dev/null; fi`
  );
}

/**
 * Shell that keeps `template` as the host's state read: written aside under a name of this shell's
 * own (two runs at once never write into one file), then moved: never half a script, never two mixed.
 */
export function storeSection(file: string, template: string, nonce: string): string {
  const end = `PROVISION_STATE_READ_${nonce}`;
  const f = quote(file);
  const tmp = `${quote(`${file}.new.`)}$$`;
  const dir = quote(file.replace(/\/[^/]*$/, '') || '/');
  return `(umask 077 && mkdir -p ${dir} && cat > ${tmp} <<'${end}'\n${template}\n${end}\nmv -f ${tmp} ${f}) >/dev/null 2>&1 || rm -f ${tmp} 2>/dev/null`;
}

/**
 * Whether a batch template may be kept on the host: never one that carries a secret (a password in a
 * MySQL probe's heredoc): secrets reach hosts on stdin only, they are not left at rest.
 */
export const keepable = (template: string): boolean => mask(template) === template;

/** The facts' output and, when the host ran its kept read, that read's answer. */
export function splitRemembered(stdout: string, stderr: string, nonce: string, timeout?: CommandTimeoutError): { facts: string; remembered?: RememberedRead } {
  const at = stdout.indexOf(marker(nonce));
  if (at < 0) return { facts: stdout };
  const rest = stdout.slice(at + marker(nonce).length);
  const eol = rest.indexOf('\n');
  const hash = eol < 0 ? '' : rest.slice(0, eol);
  if (!/^[0-9a-f]{64}$/.test(hash)) return { facts: stdout.slice(0, at) };
  return { facts: stdout.slice(0, at), remembered: { hash, nonce, stdout: rest.slice(eol), stderr, timeout } };
}
