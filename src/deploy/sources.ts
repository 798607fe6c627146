import path from 'node:path';
import type { GitSource } from './git.js';
import { gitInstallScript } from './git.js';
import { packedRelease, type LocalRelease } from './release.js';
import type { ReleaseSource } from './rolling.js';
import { installScript } from './scripts.js';

/** A release packed on the control machine, sent on stdin as a gzip'd tar to hosts that lack it. */
export function localSource(r: LocalRelease): ReleaseSource {
  return {
    id: r.id,
    label: r.label ?? path.basename(r.source),
    install: (web) => ({ cmd: installScript(web.layout, r.id, { user: web.user, build: web.build }), stdin: packedRelease(r) }),
  };
}

/** A commit of a git repository, fetched and exported on each host that lacks it; the deploy key on stdin. */
export function gitSource(src: GitSource, commit: string, ref: string): ReleaseSource {
  return {
    id: commit,
    label: ref === commit ? commit.slice(0, 12) : ref,
    install: (web) => ({ cmd: gitInstallScript(web.layout, { user: web.user, src, rev: commit, build: web.build }), stdin: Buffer.from(src.key.reveal()) }),
    explain: (msg) => explainGitFailure(msg, src.url),
  };
}

/** ssh's own words for a host key that is not the pinned one, said as what it means here. */
export function explainGitFailure(msg: string, url: string): string {
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No (ED25519|ECDSA|RSA) host key is known/i.test(msg)) {
    return `the git server of ${url} did not present the host key pinned in app_repository_host_key (ssh refused it): nothing fetched, nothing switched`;
  }
  if (/Permission denied \(publickey/.test(msg)) return `the git server of ${url} refused the deploy key (app_deploy_key_file): nothing fetched, nothing switched`;
  return msg;
}
