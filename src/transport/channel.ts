import { randomBytes } from 'node:crypto';
import { newMarkers, remoteCommand, type Markers, type SudoMode } from './remote-command.js';
import type { Channel } from './session.js';

/**
 * One long-lived channel per host and identity (#18): a small POSIX sh reader on the host runs
 * framed scripts one after another, so a later command costs one network round trip (the frame
 * out, its output and end marker back) instead of three (channel open, exec reply, output and close).
 *
 * A frame is a header line `NONCE SCRIPT_BYTES STDIN_BYTES`, the script's bytes (ending in a line
 * `#NONCE`, so a short read is never run), then the stdin's bytes. The reader takes the script with
 * `head -c` (coreutils reads no byte past its count; dash's `read` takes the header a byte at a time),
 * and runs it in `sh -c` with exactly STDIN_BYTES on its stdin (none: /dev/null). The script's stdin
 * is drained after it ends, so a script that reads less leaves no byte for the next header. Then it
 * writes `@@provision-end-NONCE CODE` on stdout and on stderr: the nonce is random per command and
 * never on the host before the header, so no output can end a command early.
 * A header that is not three fields, or a script without its closing line, ends the reader (the
 * channel closes, the command fails as an exec whose channel closed, nothing of it ran).
 */
export const READER =
  `while read -r n s i;do case $n:$s:$i in *[!0-9a-f:]*|:*|*::*|*:)exit 97;;esac;` +
  `c=$(head -c "$s";echo .);c=\${c%.};case $c in *"#$n")c=\${c%"#$n"};;*)exit 98;;esac;` +
  `if [ "$i" -gt 0 ];then head -c "$i"|{ sh -c "$c";r=$?;cat>/dev/null;exit $r;};else sh -c "$c" </dev/null;fi;` +
  `r=$?;printf '@@provision-end-%s %s\\n' "$n" $r;printf '@@provision-end-%s %s\\n' "$n" $r >&2;done`;

/** The command line that starts the reader, in sudo's mode; its first stderr line is the started marker. */
export function readerCommand(mode: SudoMode, becomeUser: string, m: Markers): string {
  // 'prompt' and 'try-without-password' announce by themselves (remoteCommand); the others are told to.
  const announce = mode === 'none' || mode === 'no-password' ? `printf '%s\\n' ${m.started} >&2\n` : '';
  return remoteCommand(announce + READER, mode, becomeUser, m);
}

/** One framed command's wire bytes. */
export function frame(nonce: string, script: string, stdin: string | Buffer | undefined): Buffer {
  const body = Buffer.from(`${script}\n#${nonce}`, 'utf8');
  const input = stdin === undefined ? Buffer.alloc(0) : Buffer.isBuffer(stdin) ? stdin : Buffer.from(stdin, 'utf8');
  return Buffer.concat([Buffer.from(`${nonce} ${body.length} ${input.length}\n`, 'ascii'), body, input]);
}

/** What a framed command came to. */
export type ShellOutcome =
  /** It ran to its end marker. */
  | { kind: 'done'; stdout: string; stderr: string; code: number }
  /** The reader never started (sudo -n refused, the channel could not open): the command did not run, send it by exec. */
  | { kind: 'not-started'; stderr: string }
  /** sudo asked a second time: it refused the password (tried once; the channel is closed). */
  | { kind: 'refused'; stderr: string }
  /** sudo neither asked with our prompt nor started the reader in time (a prompt of its own?). */
  | { kind: 'silent'; stderr: string }
  /** The channel ended before the command's end marker (the reader or the link died): as an exec without exit status. */
  | { kind: 'lost'; stdout: string; stderr: string }
  /** The controller's bound ran out before the end marker; the channel was closed. */
  | { kind: 'stuck' };

function waitedForStart(mode: SudoMode): boolean {
  return mode === 'prompt' || mode === 'try-without-password';
}

function endLine(nonce: string): Buffer {
  return Buffer.from(`@@provision-end-${nonce} `, 'ascii');
}

/** Where the end line (`@@provision-end-NONCE CODE\n`) is in buf, and its code; undefined until it is whole. */
function findEnd(buf: Buffer, nonce: string): { at: number; code: number } | undefined {
  const head = endLine(nonce);
  const at = buf.indexOf(head);
  if (at < 0) return undefined;
  const nl = buf.indexOf(0x0a, at + head.length);
  if (nl < 0) return undefined;
  return { at, code: Number(buf.subarray(at + head.length, nl).toString('ascii')) };
}

/** Longer than any end line (`@@provision-end-` + 24 hex + ` ` + code + newline). */
const END_LINE_MAX = 64;

/**
 * One stream's bytes for one command, and where its end line is. Each chunk is searched once, with the
 * tail of the one before (an end line split over two chunks), never the whole output again: a command
 * that prints a lot costs linear time.
 */
class EndScan {
  readonly #chunks: Buffer[] = [];
  #length = 0;
  #tail = Buffer.alloc(0);
  end: { at: number; code: number } | undefined;

  constructor(private readonly nonce: string | undefined) {}

  push(d: Buffer): void {
    if (this.nonce === undefined || this.end) return;
    const window = this.#tail.length ? Buffer.concat([this.#tail, d]) : d;
    const base = this.#length - this.#tail.length;
    this.#chunks.push(d);
    this.#length += d.length;
    const found = findEnd(window, this.nonce);
    if (found) this.end = { at: base + found.at, code: found.code };
    else this.#tail = Buffer.from(window.subarray(Math.max(0, window.length - END_LINE_MAX)));
  }

  /** What the command wrote, up to its end line. */
  text(): string {
    const all = Buffer.concat(this.#chunks);
    return (this.end ? all.subarray(0, this.end.at) : all).toString('utf8');
  }
}

/**
 * The reader over one channel. `open` is given the reader's command line and returns the channel
 * (an ssh2 exec). One command at a time (`busy`); after any failure the shell is `dead` and its owner
 * makes a new one for the next command.
 */
export class PersistentShell {
  #channel: Channel | undefined;
  #opening: Promise<Channel | undefined> | undefined;
  /** Settles when the channel is open (with it) and, in sudo's password modes, the reader started. */
  #ready: Promise<Channel | undefined> | undefined;
  #started = false;
  #dead = false;
  #busy = false;
  /** The running command's streams; between commands, a scan without a nonce that drops what comes (late output). */
  #out = new EndScan(undefined);
  #err = new EndScan(undefined);
  /** stderr before the reader announced itself: sudo's prompt, lecture, errors. */
  #preStart: Buffer[] = [];
  #listener: (() => void) | undefined;
  #closed = false;
  #asked = 0;
  #refused = false;
  #silent = false;

  constructor(
    private readonly mode: SudoMode,
    private readonly becomeUser: string,
    private readonly password: string | undefined,
    /** 'prompt' mode: how long sudo may take to ask or to start the reader. */
    private readonly handshakeMs: number,
    private readonly open: (command: string) => Promise<Channel>,
  ) {}

  get dead(): boolean {
    return this.#dead;
  }

  get busy(): boolean {
    return this.#busy;
  }

  /** Give up on the channel (the owner's close, a command stuck past the controller's bound). */
  discard(): void {
    this.#dead = true;
    this.#channel?.close();
  }

  private notify(): void {
    this.#listener?.();
  }

  /**
   * Opens the channel and wires its streams. Resolves with the channel once a frame may be sent:
   * at once where sudo does not read this stdin ('none', 'no-password': the frame goes with the
   * open, a round trip saved; if sudo -n refuses, it is dropped unread and nothing ran); in the password
   * modes only once the reader announced itself. undefined: the channel ended first.
   */
  private start(): Promise<Channel | undefined> {
    if (this.#ready) return this.#ready;
    const m = newMarkers();
    const startedLine = Buffer.from(`${m.started}\n`, 'utf8');
    const prompt = Buffer.from(m.prompt, 'utf8');
    const waitForStart = waitedForStart(this.mode);
    this.#opening = this.open(readerCommand(this.mode, this.becomeUser, m)).then(
      (ch) => {
        this.#channel = ch;
        let handshake: NodeJS.Timeout | undefined;
        if (this.mode === 'prompt')
          handshake = setTimeout(() => {
            this.#silent = true;
            this.discard();
          }, this.handshakeMs);
        return new Promise<Channel | undefined>((resolve) => {
          ch.onStdout((d) => {
            this.#out.push(d);
            this.notify();
          });
          ch.onStderr((d) => {
            if (this.#started) this.#err.push(d);
            else {
              // Before the reader runs only sudo writes here: its prompt, its lecture, its errors.
              this.#preStart.push(d);
              const text = Buffer.concat(this.#preStart);
              const at = text.indexOf(startedLine);
              if (at >= 0) {
                this.#started = true;
                clearTimeout(handshake);
                this.#err.push(text.subarray(at + startedLine.length));
                if (waitForStart) resolve(ch);
              } else if (this.mode === 'prompt') {
                let seen = 0;
                for (let i = text.indexOf(prompt); i >= 0; i = text.indexOf(prompt, i + prompt.length)) seen++;
                if (seen > this.#asked) {
                  this.#asked = seen;
                  if (seen === 1 && this.password !== undefined) ch.write(`${this.password}\n`);
                  else {
                    // Asked again: the password was refused. Never tried a second time (no lockout).
                    clearTimeout(handshake);
                    this.#refused = true;
                    this.discard();
                  }
                }
              }
            }
            this.notify();
          });
          ch.onClose(() => {
            clearTimeout(handshake);
            this.#closed = true;
            this.#dead = true;
            resolve(this.#started ? ch : undefined);
            this.notify();
          });
          if (!waitForStart) resolve(ch);
        });
      },
      () => {
        this.#dead = true;
        return undefined;
      },
    );
    this.#ready = this.#opening;
    return this.#ready;
  }

  /**
   * Run `script` (already bounded: boundedScript) with `stdin`. `controllerMs`: when the end marker
   * has not come by then, the channel is closed and the outcome is 'stuck'.
   */
  async run(script: string, stdin: string | Buffer | undefined, controllerMs: number): Promise<ShellOutcome> {
    if (this.#busy || this.#dead) throw new Error('persistent shell: busy or dead');
    this.#busy = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const nonce = randomBytes(12).toString('hex');
      let stuck = false;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          stuck = true;
          this.discard();
          resolve();
        }, controllerMs);
      });
      const pre = () => Buffer.concat(this.#preStart).toString('utf8');
      // Never a byte of the frame before sudo let the reader through: sudo -S reads the password from this stdin.
      const ch = await Promise.race([this.start(), bound.then(() => undefined)]);
      if (stuck) return { kind: 'stuck' };
      if (!ch || (waitedForStart(this.mode) && !this.#started)) {
        if (this.#refused) return { kind: 'refused', stderr: pre() };
        if (this.#silent) return { kind: 'silent', stderr: pre() };
        return { kind: 'not-started', stderr: pre() };
      }
      if (this.#closed) return { kind: 'not-started', stderr: '' };
      // What came after the last command's end markers (a background process's late output) was dropped.
      const out = (this.#out = new EndScan(nonce));
      const err = (this.#err = new EndScan(nonce));
      ch.write(frame(nonce, script, stdin));
      const outcome = await new Promise<ShellOutcome>((resolve) => {
        const check = () => {
          if (stuck) return resolve({ kind: 'stuck' });
          if (out.end && err.end) return resolve({ kind: 'done', stdout: out.text(), stderr: err.text(), code: out.end.code });
          if (this.#closed) {
            this.#dead = true;
            // The reader never started (sudo -n refused): the frame was dropped unread, nothing ran.
            if (!this.#started) return resolve({ kind: 'not-started', stderr: pre() });
            resolve({ kind: 'lost', stdout: out.text(), stderr: err.text() });
          }
        };
        this.#listener = check;
        void bound.then(check);
        check();
      });
      this.#listener = undefined;
      return outcome;
    } finally {
      this.#out = new EndScan(undefined);
      this.#err = new EndScan(undefined);
      clearTimeout(timer);
      this.#busy = false;
    }
  }
}
