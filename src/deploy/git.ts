import { lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { InputError } from '../util/errors.js';
import { quote, sh } from '../util/quote.js';
import { Secret } from '../util/secrets.js';
import type { AppLayout } from './host-state.js';
import { asAppUser, installBody, linkCurrentScript } from './scripts.js';

/**
 * A release from a git repository, fetched on the web host itself (as the app user, never root)
 * over SSH with a deploy key, the git server's host key pinned in the inventory. The release id is
 * the full commit.
 */
export interface GitSource {
  /** ssh://user@host[:port]/path or user@host:path. */
  url: string;
  /** The git server's host key: one known_hosts line, written by the tool, the only key ssh accepts. */
  hostKey: string;
  /** The deploy key's private half (read from app_deploy_key_file), sent on stdin only. */
  key: Secret;
}

export const COMMIT = /^[0-9a-f]{40}$/;

/** ssh URLs only (no local paths, no ext::, no option-looking argument): what git and ssh take without quoting surprises. */
const SSH_URL = /^(ssh:\/\/[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?\/[A-Za-z0-9._\/~-]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~][A-Za-z0-9._\/~-]*)$/;
export const isRepositoryUrl = (s: string) => SSH_URL.test(s) && !s.includes('..');

/** One known_hosts line: host patterns (no markers like @revoked), a key type, base64. */
const KNOWN_HOSTS_LINE = /^[A-Za-z0-9.:\[\],*?-]+ (ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,2}$/;
export const isKnownHostsLine = (s: string) => KNOWN_HOSTS_LINE.test(s.trim());

/** A branch, a tag, HEAD or a full commit: nothing git could read as an option or a range. */
const REF = /^[A-Za-z0-9._\/-]+$/;
export function checkRef(ref: string, where: string): string {
  if (!REF.test(ref) || ref.startsWith('-') || ref.includes('..') || ref.endsWith('/') || ref.endsWith('.lock')) {
    throw new InputError(`${where}: "${ref}" is not a branch, tag or full commit (letters, digits, . _ / - only)`);
  }
  return ref;
}

/**
 * The deploy key from the control machine: a regular file only its owner reads (ssh itself refuses
 * a key others can read; we say so before any host is contacted). Wrapped as a Secret: masked in
 * every output, and it only ever travels on stdin.
 */
export function readDeployKey(file: string, where = 'app_deploy_key_file'): Secret {
  const abs = path.resolve(file);
  let st;
  try {
    st = lstatSync(abs);
  } catch {
    throw new InputError(`${where}: ${file}: no such file on the control machine`);
  }
  if (!st.isFile()) throw new InputError(`${where}: ${file} is not a regular file`);
  if (st.mode & 0o077) throw new InputError(`${where}: ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
  const text = readFileSync(abs, 'utf8');
  if (!/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text.trim())) throw new InputError(`${where}: ${file} is not a private key (PEM or OpenSSH format)`);
  return new Secret('app_deploy_key_file', text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * Shell lines that set up the fetch: the deploy key from stdin into a directory only the app user
 * reads (0700, the key 0600), the pinned host key as the only known host, and GIT_SSH_COMMAND for
 * the commands run after (StrictHostKeyChecking=yes: a server with another key is refused). The
 * directory goes when the script exits, however it exits.
 */
function sshSetup(l: AppLayout, user: string, hostKey: string): string[] {
  return [
    sh`k=${`${l.dir}/.git-ssh`}; m=${`${l.dir}/repo.git`}`,
    'rm -rf "$k"',
    '(umask 077 && mkdir "$k" && cat > "$k/key")',
    sh`printf '%s\\n' ${hostKey.trim()} > "$k/known_hosts"`,
    sh`chown -R ${`${user}:${user}`} "$k"`,
    `trap 'rm -rf "$k"' EXIT`,
  ];
}

function gitEnv(l: AppLayout): Record<string, string> {
  const k = `${l.dir}/.git-ssh`;
  return {
    HOME: k,
    GIT_TERMINAL_PROMPT: '0',
    GIT_SSH_COMMAND: `ssh -i ${k}/key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${k}/known_hosts -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=15`,
  };
}

const asApp = (l: AppLayout, user: string, cmd: string, args?: string[]) => asAppUser({ user, cwd: `${l.dir}/.git-ssh`, cmd, setenv: gitEnv(l), args });

/** `git ls-remote` as the app user (read-only: nothing on the host changes). Prints every ref. */
export function lsRemoteScript(l: AppLayout, user: string, src: Pick<GitSource, 'url' | 'hostKey'>): string {
  return ['set -eu', ...sshSetup(l, user, src.hostKey), asApp(l, user, sh`git ls-remote ${src.url}`)].join('\n');
}

/**
 * The commit a ref names in `git ls-remote` output: a full commit as it is; else an annotated tag's
 * commit, a tag, a branch, or a full ref name (HEAD, refs/...). Undefined when the server has no such ref.
 */
export function resolveRef(lsRemote: string, ref: string): string | undefined {
  if (COMMIT.test(ref)) return ref;
  const refs = new Map<string, string>();
  for (const line of lsRemote.split('\n')) {
    const [sha, name] = line.trim().split(/\s+/);
    if (sha && name && COMMIT.test(sha)) refs.set(name, sha);
  }
  for (const name of [`refs/tags/${ref}^{}`, `refs/tags/${ref}`, `refs/heads/${ref}`, ref]) {
    const sha = refs.get(name);
    if (sha) return sha;
  }
  return undefined;
}

/**
 * Fetches the repository into a bare cache on the host (`app_dir/repo.git`, the app user's), and
 * exports `rev` (the commit a deploy resolved, or a ref resolved on the host: the converge's first
 * release) into `releases/<commit>` by `git archive`: the release holds the tree of that commit and
 * nothing of git. Stdin: the deploy key. With `link`, `current` then points at it (the first release).
 */
export function gitInstallScript(l: AppLayout, o: { user: string; src: Pick<GitSource, 'url' | 'hostKey'>; rev: string; build?: string; link?: boolean }): string {
  const repo = `${l.dir}/repo.git`;
  const refspecs = ['+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*', '+HEAD:refs/remote-head'];
  const revExpr = o.rev === 'HEAD' ? 'refs/remote-head' : o.rev;
  const lines = [
    'set -eu',
    'umask 022',
    ...sshSetup(l, o.user, o.src.hostKey),
    // The cache belongs to the app user (the fetch runs as it); the running app cannot write it (ProtectSystem=strict).
    sh`if [ ! -d "$m" ]; then mkdir -m 0750 "$m"; chown ${`${o.user}:${o.user}`} "$m"; fi`,
    asApp(l, o.user, sh`git init --quiet --bare ${repo} && git -C ${repo} fetch --quiet --prune --force --no-write-fetch-head ${o.src.url} ${refspecs}`),
    `id=$(${asApp(l, o.user, sh`git -C ${repo} rev-parse --verify --quiet ${`${revExpr}^{commit}`}`)}) || { echo ${quote(`${o.rev}: no such commit, branch or tag in ${o.src.url}`)} >&2; exit 1; }`,
    sh`d=${l.releases}`,
    ...installBody({
      user: o.user,
      build: o.build,
      // git archive as the app user into its own directory; root unpacks it (no pipe: a failed archive fails the script).
      unpack: `${asApp(l, o.user, sh`git -C ${repo} archive --format=tar -o ${`${l.dir}/.git-ssh/release.tar`} "$1"`, ['"$id"'])} && tar -xf "$k/release.tar" -C "$t" --no-same-owner && rm -f "$k/release.tar"`,
      cleanup: '"$k"',
    }),
  ];
  if (o.link) lines.push(linkCurrentScript(l));
  return lines.join('\n');
}
