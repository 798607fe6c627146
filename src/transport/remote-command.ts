import { randomBytes } from 'node:crypto';
import { ProvisionError } from '../util/errors.js';
import { quote } from '../util/quote.js';

/**
 * How a command is run on a host: bounded in time (the host itself stops it and everything it
 * started), and, when the host is set to become another user, under sudo. Pure text: the channel
 * work is in ./session.ts.
 */

/** Bound of a command that changes a host when neither the module nor the inventory says otherwise. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 600_000;
/** Bound of a batch of state reads (facts, probes, a module's second look). */
export const DEFAULT_PROBE_TIMEOUT_MS = 60_000;
/** At the bound, TERM; this many seconds later, KILL: a tenth of the bound, 1 to 5 s. */
export const killGraceS = (boundS: number): number => Math.min(5, Math.max(1, Math.round(boundS / 10)));

/**
 * When the controller gives up on a command: its bound, then the two graces (the process
 * group's, then the stray processes'), a second of KILL rounds, and 5 s for a loaded host. The
 * host should have ended it by then. A dead link is found by the keepalive (20 s) instead; this
 * catches a host that answers but cannot end the command (a process stuck in the kernel on a
 * stale mount does not die even from KILL).
 */
export const controllerBoundMs = (boundMs: number): number => boundMs + (2 * killGraceS(boundMs / 1000) + 1 + 5) * 1000;

/** Random markers of one command: nothing on the host can guess them. */
export interface Markers {
  id: string;
  /** sudo's own prompt (-p): the only text the password is ever sent in answer to. */
  prompt: string;
  /** First line on stderr once the command runs (sudo let it through). */
  started: string;
  /** Last line on stderr when the host stopped the command at its bound. */
  timedOut: string;
}

export function newMarkers(): Markers {
  const id = randomBytes(12).toString('hex');
  // No "%" (sudo expands %u, %h… in -p), no quote, no newline: sudo prints it exactly.
  return { id, prompt: `[provision sudo ${id}] password: `, started: `@@provision-started-${id}`, timedOut: `@@provision-timed-out-${id}` };
}

/**
 * A POSIX sh script that runs `command` for at most `boundS` seconds. coreutils `timeout` runs it
 * in a process group of its own and signals the whole group (TERM, KILL after the grace). That
 * misses processes that left the group: apt-get starts dpkg in a session of its own (on a pty),
 * and dpkg, holding the dpkg lock, outlived apt-get when only the group was killed (seen on the
 * lab). So every process of the command carries an environment tag, and when the bound ran out
 * the script also stops every tagged process and their descendants, wherever they moved, then
 * prints the timed-out marker. `timeout` exits 124 (or 137 after KILL) when the bound ran out; a
 * command that exits so by itself is told apart by the time it ran.
 */
export function boundedScript(command: string, boundS: number, m: Markers): string {
  const tag = `PROVISION_CMD_ID=${m.id}`;
  const n = Math.max(1, Math.ceil(boundS));
  const grace = killGraceS(n);
  // Compact on purpose: sudo logs the whole command line to the host's journal on every command.
  return [
    // The command, bounded; a normal end (or a 124/137 of its own, shorter than the bound) exits as it did.
    `read -r t _ </proc/uptime;${tag} timeout -k ${grace} ${n} sh -c ${quote(command)};r=$?`,
    `[ $r = 124 ]||[ $r = 137 ]||exit $r;read -r u _ </proc/uptime;[ $((\${u%.*}-\${t%.*})) -ge ${n - 1} ]||exit $r`,
    // The tagged processes and all their descendants, from /proc (procps is not needed).
    `t(){ s=$(grep -slzx ${tag} /proc/[0-9]*/environ|cut -d/ -f3);[ "$s" ]&&for f in /proc/[0-9]*/stat;do read -r l <$f&&echo "\${l%% *} \${l##*) }";done|` +
      `awk -v s="$s" 'BEGIN{n=split(s,a);for(i=1;i<=n;i++)m[a[i]]}{p[$1]=$3}END{do{c=0;for(i in p)if(!(i in m)&&p[i] in m){m[i];c=1}}while(c);for(i in m)if(i in p)print i}'; } 2>/dev/null`,
    // TERM, up to the grace for them to go, then KILL until none is left (one may fork between two looks).
    `k=$(t);[ "$k" ]&&{ kill $k;i=0;while [ $i -lt ${grace} ];do sleep 1;k=$(t);[ "$k" ]||break;i=$((i+1));done;` +
      `i=0;while [ "$k" ]&&[ $i -lt 5 ];do kill -9 $k;sleep .2;k=$(t);i=$((i+1));done; } 2>/dev/null`,
    `printf '\\n%s\\n' ${m.timedOut} >&2;exit 124`,
  ].join('\n');
}

export type SudoMode =
  /** No become: the login user runs it. */
  | 'none'
  /** sudo -n: no password configured; stdin goes straight to the command. */
  | 'no-password'
  /** sudo -n with the started marker: a password is configured but sudo did not ask last time; if it does now, the command did not run and is retried with 'prompt'. */
  | 'try-without-password'
  /** sudo -S with our prompt: the password answers the prompt only; stdin waits for the started marker. */
  | 'prompt';

/** The command line the SSH channel runs. */
export function remoteCommand(script: string, mode: SudoMode, becomeUser: string, m: Markers): string {
  if (mode === 'none') return `sh -c ${quote(script)}`;
  const as = `-H -u ${quote(becomeUser)} --`;
  const announce = `printf '%s\\n' ${m.started} >&2\n`;
  if (mode === 'no-password') return `sudo -n ${as} sh -c ${quote(script)}`;
  if (mode === 'try-without-password') return `sudo -n ${as} sh -c ${quote(announce + script)}`;
  return `sudo -S -p ${quote(m.prompt)} ${as} sh -c ${quote(announce + script)}`;
}

/** A command that ran out of its bound: the task fails (the host answered; its command did not end). */
export class CommandTimeoutError extends ProvisionError {
  constructor(
    readonly what: string,
    readonly boundMs: number,
    /** Where the bound comes from, for the message: "probe_timeout", "the task's timeout"… */
    readonly setting: string,
    /** true: the host did not end it even after KILL (the controller gave up on the channel). */
    readonly stuck: boolean,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(
      `${what} did not finish within ${boundMs / 1000}s (${setting}); ` +
        (stuck
          ? `the host did not end it within ${(controllerBoundMs(boundMs) - boundMs) / 1000}s after that, even with KILL (a process stuck in the kernel, e.g. on a stale mount?)`
          : 'the host stopped it and every process it started'),
      stuck ? 'look at the host: a process may be stuck in uninterruptible sleep (ps -eo stat,args | grep "^D")' : `raise ${setting} if the command needs longer`,
    );
  }

  /** The same timeout, described by the caller who knows what the command was for. */
  as(what: string, setting = this.setting): CommandTimeoutError {
    return new CommandTimeoutError(what, this.boundMs, setting, this.stuck, this.stdout, this.stderr);
  }
}
