import { execFileSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

/*
 * The line is read by a small sh on the terminal, not by Node: Ctrl-C reaches both, and the shell's
 * trap turns echo back on, which a Node process blocked in a read could not do before dying. The
 * answer comes back on a pipe (never in argv); the question goes to the terminal.
 */
const READ_HIDDEN = `trap 'stty echo; printf "\\n" >&2; exit 130' INT TERM HUP
printf '%s' "$1" >&2
stty -echo
IFS= read -r line
status=$?
stty echo
printf '\\n' >&2
[ "$status" -eq 0 ] || exit 1
printf '%s' "$line"`;

/**
 * Ask for a password on the controlling terminal, without echo. Synchronous on purpose: it runs
 * while the inventory is read, before any connection, so no connection's timers run meanwhile.
 * Returns undefined when there is no terminal to ask on.
 */
export function promptHidden(question: string): string | undefined {
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    return undefined;
  }
  try {
    return execFileSync('sh', ['-c', READ_HIDDEN, 'sh', question], { stdio: [fd, 'pipe', fd], encoding: 'utf8', maxBuffer: 64 * 1024 });
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Whether a prompt may be shown: as asked, else when both stdin and stderr are terminals. */
export function canPrompt(interactive: boolean | undefined): boolean {
  return interactive ?? (Boolean(process.stdin.isTTY) && Boolean(process.stderr.isTTY));
}
