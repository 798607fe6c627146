import { closeSync, openSync } from 'node:fs';
import { isatty } from 'node:tty';
import type { EventSink } from '../executor/index.js';
import { ProvisionError, errorMessage } from '../util/errors.js';
import { mask } from '../util/secrets.js';

/** The run failed (exit 1): what an error nobody caught ends the process with. */
const INTERNAL_ERROR_EXIT = 1;

/**
 * A reader that goes away (`provision … | head -1`) or a terminal that closes must not stop a run
 * that is changing hosts half way, nor print a stack trace: from the first write error on, the
 * stream stays silent and the run goes on to its end and its own exit code. A closed pipe (EPIPE)
 * is what a pipe's reader is allowed to do, so it is not even mentioned; any other write error is
 * said once on the other stream, if that one still works. A terminal that hung up (EIO) is left
 * altogether (leaveTerminal).
 */
export function guardOutputStreams(streams: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream } = process): void {
  const gone = new Set<NodeJS.WriteStream>();
  const guard = (stream: NodeJS.WriteStream, name: string, other: NodeJS.WriteStream) => {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (gone.has(stream)) return;
      gone.add(stream);
      if (err.code === 'EIO' && stream.isTTY) {
        leaveTerminal();
        if (other.isTTY) gone.add(other);
      }
      if (err.code === 'EPIPE' || gone.has(other)) return;
      other.write(`provision: warning: ${name}: ${err.code ?? err.message}; no more output there, the run goes on\n`);
    });
  };
  guard(streams.stdout, 'stdout', streams.stderr);
  guard(streams.stderr, 'stderr', streams.stdout);
}

/** fds 0–2 that were a terminal when the process started (read once, before any hang-up). */
let terminalFds: number[] | undefined;
let leftTerminal = false;

/**
 * The terminal is gone (its session hung up: an SSH connection to the control machine dropped, a
 * terminal window closed). The run goes on without it, as under `nohup`: a run stopped half way
 * leaves hosts half converged. Writes to it become no-ops, and its file descriptors are pointed at
 * /dev/null: Node restores a terminal's settings on exit and aborts (SIGABRT, the exit code lost)
 * when that terminal is gone.
 */
export function leaveTerminal(): void {
  if (leftTerminal) return;
  leftTerminal = true;
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.isTTY) stream.write = (() => true) as typeof stream.write;
  }
  for (const fd of terminalFds ?? []) {
    try {
      closeSync(fd);
      // The lowest free descriptor: this one again (unless another thread took it in between; then
      // it is not the terminal either, and Node leaves it alone on exit).
      const devNull = openSync('/dev/null', 'r+');
      if (devNull !== fd) closeSync(devNull);
    } catch {
      // nothing more can be done without a terminal
    }
  }
}

/** SIGHUP no longer ends a run half way: the terminal is left and the run goes on to its exit code. */
export function surviveTerminalHangup(): void {
  terminalFds = [0, 1, 2].filter((fd) => isatty(fd));
  process.on('SIGHUP', leaveTerminal);
}

const BUG_HINT = 'this is a bug in provision; PROVISION_DEBUG=1 prints where it happened';

/**
 * Every line the CLI prints itself goes out through one of these two: masked (every registered
 * secret, in any encoding), whatever built the text. Run events reach their renderers masked by
 * the executor's maskedSink; plan files are masked by the plan writer.
 */
export function printOut(text: string): void {
  process.stdout.write(mask(text) + '\n');
}

export function printErr(text: string): void {
  process.stderr.write(mask(text) + '\n');
}

/**
 * An error as the CLI says it: one line and at most one hint (masked when printed: printError).
 * Our own errors say what and where; anything else is a bug and is called one (its stack only with
 * PROVISION_DEBUG=1).
 */
export function errorLines(err: unknown): string[] {
  if (err instanceof ProvisionError) {
    return [`provision: error: ${err.message}`, ...(err.hint ? [`provision: hint: ${err.hint}`] : [])];
  }
  const lines = [`provision: error: internal error: ${errorMessage(err)}`, `provision: hint: ${BUG_HINT}`];
  if (process.env.PROVISION_DEBUG === '1' && err instanceof Error && err.stack) lines.push(err.stack);
  return lines;
}

/** The CLI's error printer. */
export function printError(err: unknown): void {
  printErr(errorLines(err).join('\n'));
}

/** Colour on a terminal, unless NO_COLOR is set (no-color.org) or --no-color / `color: false` said so. */
export function useColor(o: { color?: boolean }, stream: { isTTY?: boolean } = process.stdout): boolean {
  return o.color !== false && Boolean(stream.isTTY) && !process.env.NO_COLOR;
}

/**
 * The renderer of a run's events. The live (listr2) renderer is loaded only on a TTY: the module
 * graph costs start time every other run. A terminal that reports no width (a bare pseudo-terminal,
 * some serial consoles) gets plain lines: the live view would wrap every character onto a line of its own.
 * --json shows -vv's command events only when asked for (-vv): otherwise its lines stay as they were.
 * --log FILE gets the plain view as well, whatever the terminal shows.
 */
export async function makeReporter(o: { json?: boolean; diff?: boolean; verbose: number; log?: string; color?: boolean }): Promise<EventSink> {
  const shown = await screenReporter(o);
  if (!o.log) return shown;
  const { openLog, teeSink } = await import('./log.js');
  return teeSink(shown, openLog(o.log, { diff: Boolean(o.diff), verbose: o.verbose }));
}

async function screenReporter(o: { json?: boolean; diff?: boolean; verbose: number; color?: boolean }): Promise<EventSink> {
  // Loaded with the first run that shows events: --help and the local commands never load them.
  const { JsonReporter, PlainReporter } = await import('../report/renderers.js');
  if (o.json) {
    const json = new JsonReporter();
    return o.verbose >= 2 ? json : { emit: (e) => e.kind !== 'command' && json.emit(e) };
  }
  const color = useColor(o);
  const fmt = { diff: Boolean(o.diff), verbose: o.verbose, color };
  if (process.stdout.isTTY && process.stdout.columns > 0 && !process.env.CI) {
    // listr2 reads NO_COLOR when it is loaded: --no-color reaches its own colours that way.
    if (o.color === false) process.env.NO_COLOR = '1';
    const { LiveReporter } = await import('../report/live.js');
    return new LiveReporter(fmt);
  }
  return new PlainReporter(fmt);
}

/**
 * The last net: an error that nothing caught is said like any other (errorLines) and the process
 * ends with exit 1, not with Node's stack trace.
 */
export function installLastResortHandlers(): void {
  const die = (err: unknown) => {
    try {
      printError(err);
    } finally {
      process.exit(INTERNAL_ERROR_EXIT);
    }
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
}
