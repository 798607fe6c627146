/**
 * An in-process SSH server whose exec requests run in the local sh, with a fake `sudo` first on
 * PATH that behaves like the real one where it matters here: `-n` refuses when a password is
 * needed; `-S -p PROMPT` prints the prompt on stderr and reads the password from stdin one byte
 * at a time (so it never reads past the line), says "Sorry, try again." and asks again on a
 * wrong one, three times at most. Whether it asks: `always`, `never` (NOPASSWD), or `cached`
 * (asks until a right password made its timestamp file, which a test can remove). It records
 * each call's mode and each password it was given, so tests can see what sudo saw.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Host } from '../../../src/inventory/index.ts';
import { loopbackHost } from '../helpers/hosts.ts';
import { shServer } from '../helpers/sh-server.ts';

export type SudoAsks = 'always' | 'never' | 'cached';

const FAKE_SUDO = `#!/bin/sh
d=$FAKE_SUDO_DIR; nonint=; prompt='Password: '
while [ $# -gt 0 ]; do case $1 in -n) nonint=1;; -S|-H) ;; -p|-u) [ "$1" = -p ] && prompt=$2; shift;; --) shift; break;; esac; shift; done
if [ -n "$nonint" ]; then printf '%s\\n' -n; else printf '%s\\n' -S; fi >> "$d/calls"
asks=$(cat "$d/asks")
if [ "$asks" = always ] || { [ "$asks" = cached ] && [ ! -e "$d/timestamp" ]; }; then
  [ -z "$nonint" ] || { echo "sudo: a password is required" >&2; exit 1; }
  n=0
  while :; do
    if [ -e "$d/own-prompt" ]; then printf 'Enter your PIN: ' >&2; else printf '%s' "$prompt" >&2; fi
    IFS= read -r pw || { echo "sudo: no password was provided" >&2; exit 1; }
    printf '%s\\n' "$pw" >> "$d/attempts"
    [ "$pw" = "$(cat "$d/password")" ] && break
    n=$((n + 1)); [ $n -lt 3 ] || { echo "sudo: 3 incorrect password attempts" >&2; exit 1; }
    echo "Sorry, try again." >&2
  done
  touch "$d/timestamp"
fi
exec "$@"
`;

export interface FakeHost {
  host: Host;
  dir: string;
  /** Modes of each sudo call, in order: "-n" or "-S". */
  calls(): string[];
  /** Exec requests so far (each a channel of its own), in order: their command lines. */
  execs(): string[];
  /** Every password sudo was given, in order. */
  attempts(): string[];
  setAsks(asks: SudoAsks): void;
  forgetTimestamp(): void;
  /** From now on sudo asks with a prompt of its own (as a PAM module may), not the one given with -p. */
  useOwnPrompt(): void;
  close(): Promise<void>;
}

/** `stuckOn`: an exec whose command line contains it is accepted and never answered (a host that cannot end it). */
export async function fakeHost(opts: { asks: SudoAsks; password: string; passwordEnv?: string; stuckOn?: string }): Promise<FakeHost> {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-fakehost-'));
  const binDir = mkdtempSync(path.join(dir, 'bin-'));
  writeFileSync(path.join(binDir, 'sudo'), FAKE_SUDO);
  chmodSync(path.join(binDir, 'sudo'), 0o755);
  writeFileSync(path.join(dir, 'asks'), opts.asks);
  writeFileSync(path.join(dir, 'password'), opts.password);
  const execs: string[] = [];
  const server = await shServer({
    env: { PATH: `${binDir}:${process.env.PATH}`, FAKE_SUDO_DIR: dir, LC_ALL: 'C' },
    onExec: (command) => {
      execs.push(command);
      if (opts.stuckOn && command.includes(opts.stuckOn)) return false;
    },
  });
  const port = server.port;
  const env = opts.passwordEnv ?? `PROVISION_TEST_SUDO_${port}`;
  process.env[env] = opts.password;
  const lines = (f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean) : []);
  return {
    dir,
    host: loopbackHost(
      { user: 'alice', port, knownHosts: path.join(dir, 'known_hosts'), acceptNewHostKeys: true, become: true, becomePasswordEnv: env },
      { name: 'fake', groups: [] },
    ),
    calls: () => lines('calls'),
    execs: () => [...execs],
    attempts: () => lines('attempts'),
    setAsks: (asks) => writeFileSync(path.join(dir, 'asks'), asks),
    forgetTimestamp: () => rmSync(path.join(dir, 'timestamp'), { force: true }),
    useOwnPrompt: () => writeFileSync(path.join(dir, 'own-prompt'), ''),
    close: () =>
      server.close().then(() => {
        delete process.env[env];
        rmSync(dir, { recursive: true, force: true });
      }),
  };
}
