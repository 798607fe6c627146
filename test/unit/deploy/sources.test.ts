/** Where releases come from: git (refs, URLs, the pinned host key, the deploy key), app_build_local, Node.js from an apt repository. */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { checkRef, gitInstallScript, isKnownHostsLine, isRepositoryUrl, lsRemoteScript, readDeployKey, resolveRef } from '../../../src/deploy/git.ts';
import { appLayout } from '../../../src/deploy/host-state.ts';
import { buildLocal, LocalBuildError, localRelease } from '../../../src/deploy/release.ts';
import { explainGitFailure } from '../../../src/deploy/sources.ts';
import { armor, dearmor, nodejsRepositoryTasks, NODEJS_KEYRING, NODEJS_PIN, NODEJS_SOURCES, primaryFingerprints, type NodejsVars } from '../../../src/roles/app/nodejs.ts';
import { captureOutput } from '../helpers/output.ts';

const { stderr } = captureOutput();
const C1 = 'a'.repeat(40);
const C2 = '0123456789abcdef0123456789abcdef01234567';
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-sources-'));
});

describe('git sources', () => {
  const LS = [`${C1}\tHEAD`, `${C1}\trefs/heads/main`, `${C2}\trefs/tags/v1`, `${C1}\trefs/tags/v1^{}`, `${C2}\trefs/heads/v1-fix`].join('\n');

  it('a ref resolves to its commit: an annotated tag to the commit it names, a branch, HEAD, a full commit as it is; an unknown one to nothing', () => {
    expect(resolveRef(LS, 'v1')).toBe(C1);
    expect(resolveRef(LS, 'v1-fix')).toBe(C2);
    expect(resolveRef(LS, 'HEAD')).toBe(C1);
    expect(resolveRef(LS, 'refs/heads/main')).toBe(C1);
    expect(resolveRef('', C2)).toBe(C2);
    expect(resolveRef(LS, 'nope')).toBeUndefined();
    expect(resolveRef(LS, 'abcdef1')).toBeUndefined();
  });

  it('only ssh URLs, known_hosts lines and plain refs: nothing git or ssh could take as an option or a local path', () => {
    for (const good of ['git@git.example.com:team/app.git', 'ssh://git@10.0.0.5:2222/srv/app.git', 'deploy@host:app']) expect(isRepositoryUrl(good), good).toBe(true);
    for (const bad of ['-oProxyCommand=sh@x:y', 'ext::sh -c id', '/srv/app.git', 'file:///srv/app.git', 'https://github.com/a/b.git', 'git@host:../etc', 'git@host:-u', 'git@host:a b']) {
      expect(isRepositoryUrl(bad), bad).toBe(false);
    }
    expect(isKnownHostsLine('10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0z')).toBe(true);
    expect(isKnownHostsLine('[git.example.com]:2222 ecdsa-sha2-nistp256 AAAAE2VjZHNh=')).toBe(true);
    expect(isKnownHostsLine('@revoked * ssh-ed25519 AAAA')).toBe(false);
    expect(isKnownHostsLine('host ssh-ed25519 AAAA\nevil ssh-ed25519 BBBB')).toBe(false);
    expect(checkRef('release/1.2', 'x')).toBe('release/1.2');
    for (const bad of ['--upload-pack=id', 'a..b', 'a b', 'HEAD~1', 'main^', 'x.lock', '$(id)']) expect(() => checkRef(bad, '--release'), bad).toThrow(/--release: .* is not a branch, tag or full commit/);
  });

  it('the deploy key: a file only its owner reads, kept as a Secret (masked), never in the host scripts', () => {
    const key = path.join(dir, 'key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    chmodSync(key, 0o644);
    expect(() => readDeployKey(key)).toThrow(/readable by others \(mode 644\): chmod 600/);
    chmodSync(key, 0o600);
    const secret = readDeployKey(key);
    expect(String(secret)).toBe('********');
    expect(secret.reveal()).toContain('PRIVATE KEY');
    chmodSync(`${key}.pub`, 0o600);
    expect(() => readDeployKey(`${key}.pub`)).toThrow(/not a private key/);
    expect(() => readDeployKey(path.join(dir, 'none'))).toThrow(/no such file/);

    const l = appLayout('/opt/app');
    const src = { url: 'git@10.0.0.5:app.git', hostKey: '10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0z' };
    for (const script of [gitInstallScript(l, { user: 'app', src, rev: C1, build: 'npm ci' }), lsRemoteScript(l, 'app', src)]) {
      expect(script).not.toContain(secret.reveal().split('\n')[1]);
      // The key from stdin into a directory of the app user, 0700/0600, removed on exit.
      expect(script).toContain('(umask 077 && mkdir "$k" && cat > "$k/key")');
      expect(script).toContain(`trap 'rm -rf "$k"' EXIT`);
      // Only the pinned host key is accepted.
      expect(script).toContain("printf '%s\\n' '10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0z' > \"$k/known_hosts\"");
      expect(script).toContain('StrictHostKeyChecking=yes');
      expect(script).toContain('GlobalKnownHostsFile=/dev/null');
      // Every git command runs as the app user (systemd-run --uid), never root.
      for (const line of script.split('\n').filter((x) => /\bgit (ls-remote|init|-C)/.test(x))) expect(line).toContain('--uid=app');
    }
  });

  it("ssh's refusal of the host key is said as what it means here", () => {
    expect(explainGitFailure('exit 128: Host key verification failed.\r\nfatal: Could not read from remote repository.', 'git@h:a.git')).toBe(
      'the git server of git@h:a.git did not present the host key pinned in app_repository_host_key (ssh refused it): nothing fetched, nothing switched',
    );
    expect(explainGitFailure('git@h: Permission denied (publickey).', 'git@h:a.git')).toMatch(/refused the deploy key/);
    expect(explainGitFailure('other', 'u')).toBe('other');
  });
});

describe('app_build_local', () => {
  it("runs in a copy (the user's tree stays as it was); the release is the built output", () => {
    const src = path.join(dir, 'app-src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'main.ts'), 'export {}\n');
    const before = localRelease(src).id;
    const r = buildLocal(src, 'mkdir dist && echo built > dist/out.js && pwd > where');
    expect(existsSync(path.join(src, 'dist'))).toBe(false);
    expect(localRelease(src).id).toBe(before);
    expect(r.id).not.toBe(before);
    expect(readFileSync(path.join(r.source, 'dist/out.js'), 'utf8')).toBe('built\n');
    expect(readFileSync(path.join(r.source, 'where'), 'utf8').trim()).not.toBe(src);
    expect(r.label).toBe('app-src');
    // Once per process: the same source and command are not built again.
    expect(buildLocal(src, 'mkdir dist && echo built > dist/out.js && pwd > where')).toBe(r);
  });

  it('a failing build: exit 1 saying so, before any host is contacted (the hosts here are unreachable: that would be 3)', async () => {
    const src = path.join(dir, 'app-fails');
    mkdirSync(src);
    writeFileSync(path.join(src, 'server.js'), '');
    expect(() => buildLocal(src, 'echo compiling; echo "error TS2322" >&2; exit 3')).toThrow(LocalBuildError);
    const inv = path.join(dir, 'inv-build.yml');
    writeFileSync(
      inv,
      `hosts:\n  web-01: { address: 127.0.0.1, port: 1, connect_timeout: 2, groups: [webservers] }\nvars:\n  mysql_app_password: !secret mysql_app_password\n  app_source: ${src}\n  app_build_local: "echo compiling; echo 'error TS2322' >&2; exit 3"\n`,
    );
    process.env.PROVISION_SECRET_MYSQL_APP_PASSWORD = 'unit-test-password-1';
    try {
      expect(await main(['deploy', '-i', inv])).toBe(1);
    } finally {
      delete process.env.PROVISION_SECRET_MYSQL_APP_PASSWORD;
    }
    expect(stderr.join('')).toMatch(/app_build_local ".*" failed \(exit 3\) in a copy of .*app-fails: .*error TS2322.*: nothing deployed/);
    expect(stderr.join('')).not.toContain('UNREACHABLE');
  });
});

describe('Node.js from an apt repository', () => {
  const gnupg = () => mkdtempSync(path.join(tmpdir(), 'provision-gpg-'));
  let keyFile: string;
  let fingerprint: string;
  let otherKey: string;
  let otherFingerprint: string;
  beforeAll(() => {
    const home = gnupg();
    const gpg = (...a: string[]) => execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', ...a], { encoding: 'utf8' });
    gpg('--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Repo <repo@example.com>', 'ed25519', 'sign', 'never');
    gpg('--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Other <other@example.com>', 'ed25519', 'sign', 'never');
    const fprs = gpg('--with-colons', '--list-keys')
      .split('\n')
      .filter((l) => l.startsWith('fpr:'))
      .map((l) => l.split(':')[9]!);
    fingerprint = fprs[0]!;
    keyFile = path.join(dir, 'repo.asc');
    writeFileSync(keyFile, gpg('--armor', '--export', fingerprint));
    otherFingerprint = fprs[1]!;
    otherKey = path.join(dir, 'both.gpg');
    writeFileSync(otherKey, execFileSync('gpg', ['--homedir', home, '--batch', '--export'], {}));
    writeFileSync(path.join(dir, 'both.secret'), execFileSync('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--export-secret-keys'], {}));
  });
  const vars = (o: Partial<NodejsVars> = {}): NodejsVars => ({
    app_nodejs_source: 'nodesource',
    app_nodejs_major: 20,
    app_nodejs_repository: '',
    app_nodejs_key_file: keyFile,
    app_nodejs_key_fingerprint: fingerprint,
    ...o,
  });

  it("the fingerprint computed here is gpg's, armored or binary; our armor reads back in gpg", () => {
    const bytes = dearmor(readFileSync(keyFile));
    expect(primaryFingerprints(bytes)).toEqual([fingerprint]);
    const binary = path.join(dir, 'repo.gpg');
    writeFileSync(binary, bytes);
    expect(primaryFingerprints(dearmor(readFileSync(binary)))).toEqual([fingerprint]);
    const again = path.join(dir, 'again.asc');
    writeFileSync(again, armor(bytes));
    expect(execFileSync('gpg', ['--batch', '--with-colons', '--show-keys', again], { encoding: 'utf8' })).toContain(`fpr:::::::::${fingerprint}:`);
  });

  it('the keyring first, then the pin and the deb822 source that trusts it only (Signed-By), the major pinned', () => {
    const tasks = nodejsRepositoryTasks(vars({ app_nodejs_key_fingerprint: fingerprint.toLowerCase().replace(/(.{4})/g, '$1 ') }));
    expect(tasks.map((t) => (t.params as { dest: string }).dest)).toEqual([NODEJS_KEYRING, NODEJS_PIN, NODEJS_SOURCES]);
    const content = (i: number) => String((tasks[i]!.params as { content: string }).content);
    expect(content(2)).toBe(
      `# Managed by provision (role app): Node.js from an apt repository.\nTypes: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\nSigned-By: ${NODEJS_KEYRING}\n`,
    );
    expect(content(1)).toContain('Package: nodejs\nPin: version 20.*\nPin-Priority: 1001\n');
    expect(content(0)).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----\n/);
    expect(nodejsRepositoryTasks(vars({ app_nodejs_source: 'debian' }))).toEqual([]);
  });

  it('real apt reads what the tasks write: the armored keyring, the deb822 source signed by it only, the major pinned', () => {
    // A repository of one package (nodejs 20.99.0 and 18.99.0), signed by the repository's key, read by
    // apt-get/apt-cache of this machine in a private tree (nothing of the machine's apt touched).
    const home = mkdtempSync(path.join(tmpdir(), 'provision-gpg-sign-'));
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--import'], { input: readFileSync(path.join(dir, 'both.secret')) });
    const apt = mkdtempSync(path.join(tmpdir(), 'provision-apt-'));
    const repo = path.join(apt, 'repo');
    const dists = path.join(repo, 'dists/nodistro/main/binary-amd64');
    mkdirSync(dists, { recursive: true });
    const stanza = (v: string) => `Package: nodejs\nVersion: ${v}\nArchitecture: amd64\nMaintainer: t <t@example.com>\nFilename: pool/nodejs_${v}_amd64.deb\nSize: 1\nSHA256: ${'0'.repeat(64)}\nDescription: test\n`;
    const packages = `${stanza('20.99.0')}\n${stanza('18.99.0')}`;
    writeFileSync(path.join(dists, 'Packages'), packages);
    const sha = execFileSync('sha256sum', [path.join(dists, 'Packages')], { encoding: 'utf8' }).split(' ')[0];
    const release = `Origin: test\nSuite: nodistro\nCodename: nodistro\nArchitectures: amd64\nComponents: main\nDate: ${new Date().toUTCString()}\nSHA256:\n ${sha} ${Buffer.byteLength(packages)} main/binary-amd64/Packages\n`;
    const sign = (fpr: string) =>
      writeFileSync(path.join(repo, 'dists/nodistro/InRelease'), execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--local-user', fpr, '--clearsign'], { input: release }));
    const tasks = nodejsRepositoryTasks(vars({ app_nodejs_repository: `file:${repo}` }));
    const write = (dest: string, i: number) => {
      const f = path.join(apt, dest);
      mkdirSync(path.dirname(f), { recursive: true });
      writeFileSync(f, String((tasks[i]!.params as { content: string }).content).replaceAll(NODEJS_KEYRING, path.join(apt, NODEJS_KEYRING)));
    };
    write(NODEJS_KEYRING, 0);
    write(NODEJS_PIN, 1);
    write(NODEJS_SOURCES, 2);
    writeFileSync(path.join(apt, 'status'), '');
    mkdirSync(path.join(apt, 'state/lists/partial'), { recursive: true });
    mkdirSync(path.join(apt, 'cache/archives/partial'), { recursive: true });
    const opts = ['-o', 'Dir::Etc::SourceList=/dev/null', '-o', `Dir::Etc::SourceParts=${apt}/etc/apt/sources.list.d`, '-o', `Dir::Etc::PreferencesParts=${apt}/etc/apt/preferences.d`, '-o', 'Dir::Etc::Preferences=/dev/null', '-o', `Dir::State=${apt}/state`, '-o', `Dir::State::status=${apt}/status`, '-o', `Dir::Cache=${apt}/cache`, '-o', 'APT::Architecture=amd64', '-o', 'Debug::NoLocking=1', '-o', 'APT::Sandbox::User=root'];
    const update = () => spawnSync('apt-get', [...opts, '-q', 'update'], { encoding: 'utf8' });
    sign(fingerprint);
    const good = update();
    expect(good.status, good.stdout + good.stderr).toBe(0);
    expect(good.stdout + good.stderr).not.toMatch(/^(W|E):/m);
    const policy = execFileSync('apt-cache', [...opts, 'policy', 'nodejs'], { encoding: 'utf8' });
    expect(policy).toMatch(/Candidate: 20\.99\.0/);
    expect(policy).toMatch(/Installed: \(none\)/);
    expect(policy).toMatch(/^ +20\.99\.0 1001$/m);
    // Signed by another key: apt refuses the repository (the keyring trusts the pinned key only).
    sign(otherFingerprint);
    rmSync(path.join(apt, 'state/lists'), { recursive: true, force: true });
    mkdirSync(path.join(apt, 'state/lists/partial'), { recursive: true });
    const bad = update();
    expect(bad.stdout + bad.stderr).toMatch(/NO_PUBKEY|not signed|is not signed|signatures were invalid/);
  });

  it('a key with another fingerprint, two keys, or no key: refused before any task is made (nothing written)', () => {
    expect(() => nodejsRepositoryTasks(vars({ app_nodejs_key_fingerprint: 'F'.repeat(40) }))).toThrow(new RegExp(`has fingerprint ${fingerprint}, not F{40} \\(app_nodejs_key_fingerprint\\): not trusted, nothing written`));
    expect(() => nodejsRepositoryTasks(vars({ app_nodejs_key_file: otherKey }))).toThrow(/holds 2 primary keys .*exactly one is trusted/);
    const junk = path.join(dir, 'junk');
    writeFileSync(junk, 'not a key');
    expect(() => nodejsRepositoryTasks(vars({ app_nodejs_key_file: junk }))).toThrow(/app_nodejs_key_file: .*junk: not an OpenPGP key/);
  });
});
