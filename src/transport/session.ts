import type { Markers, SudoMode } from './remote-command.js';

/** What an exec channel offers (an ssh2 ClientChannel; a local child process in tests). */
export interface Channel {
  write(data: string | Buffer): void;
  /** End of the command's stdin. */
  end(): void;
  /** Give up on the channel (the command's side may go on; see the bounded script). */
  close(): void;
  onStdout(cb: (d: Buffer) => void): void;
  onStderr(cb: (d: Buffer) => void): void;
  onExit(cb: (code: number | null, signal?: string) => void): void;
  onClose(cb: () => void): void;
}

export interface SessionResult {
  stdout: string;
  /** Without sudo's prompts, what sudo printed before the command ran, and the markers. */
  stderr: string;
  /** null: the channel closed without an exit status (the connection went away). */
  code: number | null;
  /** The started marker was seen: the command ran (always true where no marker is used). */
  started: boolean;
  /** sudo asked for the password (prompt mode). */
  asked: boolean;
  /** sudo asked again after the password: it refused it; stdin was closed instead of answering. */
  passwordRefused: boolean;
  /** The host stopped the command at its bound. */
  timedOut: boolean;
  /** 'prompt' mode: sudo neither asked with our prompt nor started the command in time (a prompt of its own?); the channel was closed. */
  sudoSilent: boolean;
}

function occurrences(text: string, what: string): number {
  let n = 0;
  for (let i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + what.length)) n++;
  return n;
}

/**
 * Runs one command over an opened channel. In 'prompt' mode nothing is written until sudo speaks:
 * the password is sent only in answer to our own random prompt, and the command's stdin only once
 * the command announced that it runs (the started marker). So when sudo does not ask (NOPASSWD, a
 * cached timestamp), the password is never sent at all, and when it asks twice (a wrong password)
 * the answer is the end of stdin, which makes sudo give up at once. In the other modes stdin is
 * written at once, as before: no wait.
 */
export function runSession(
  ch: Channel,
  mode: SudoMode,
  m: Markers,
  password: string | undefined,
  stdin: string | Buffer | undefined,
  /** 'prompt' mode: how long sudo may take to ask or to start the command. */
  handshakeMs = 30_000,
): Promise<SessionResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const marked = mode === 'prompt' || mode === 'try-without-password';
    const startedLine = `${m.started}\n`;
    let started = !marked;
    let prompts = 0;
    let passwordRefused = false;
    let code: number | null = null;
    let sudoSilent = false;
    // sudo that asks with a prompt of its own (a PAM module's) would wait forever for an answer we never give.
    const handshake =
      mode === 'prompt'
        ? setTimeout(() => {
            sudoSilent = true;
            ch.close();
          }, handshakeMs)
        : undefined;
    const sendStdin = () => {
      if (stdin !== undefined && stdin.length > 0) ch.write(stdin);
      ch.end();
    };
    ch.onStdout((d) => out.push(d));
    ch.onStderr((d) => {
      err.push(d);
      if (started || passwordRefused) return;
      // Before the command runs only sudo writes here: its prompt (which has no newline), its lecture, its errors.
      const text = Buffer.concat(err).toString('utf8');
      if (text.includes(startedLine)) {
        started = true;
        clearTimeout(handshake);
        if (mode === 'prompt') sendStdin();
        return;
      }
      if (mode !== 'prompt') return;
      const seen = occurrences(text, m.prompt);
      if (seen === prompts) return;
      prompts = seen;
      if (prompts === 1 && password !== undefined) {
        ch.write(`${password}\n`);
      } else {
        clearTimeout(handshake);
        passwordRefused = true;
        ch.end();
      }
    });
    ch.onExit((c, signal) => {
      code = c ?? (signal ? 128 : 255);
    });
    ch.onClose(() => {
      clearTimeout(handshake);
      let text = Buffer.concat(err).toString('utf8');
      if (marked) {
        const at = text.indexOf(startedLine);
        text = at >= 0 ? text.slice(at + startedLine.length) : text.split(m.prompt).join('');
      }
      const timedOutLine = `\n${m.timedOut}\n`;
      const timedOut = text.includes(timedOutLine);
      if (timedOut) text = text.split(timedOutLine).join('');
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: text, code, started, asked: prompts > 0, passwordRefused, timedOut, sudoSilent });
    });
    if (mode !== 'prompt') sendStdin();
  });
}
