import { ProvisionError, errorMessage } from '../util/errors.js';
import { mask } from '../util/secrets.js';

/** The run failed (exit 1): what an error nobody caught ends the process with. */
const INTERNAL_ERROR_EXIT = 1;

/**
 * A reader that goes away (`provision … | head -1`) or a terminal that closes must not stop a run
 * that is changing hosts half way, nor print a stack trace: from the first write error on, the
 * stream stays silent and the run goes on to its end and its own exit code. A closed pipe (EPIPE)
 * is what a pipe's reader is allowed to do, so it is not even mentioned; any other write error is
 * said once on the other stream, if that one still works.
 */
export function guardOutputStreams(streams: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream } = process): void {
  const gone = new Set<NodeJS.WriteStream>();
  const guard = (stream: NodeJS.WriteStream, name: string, other: NodeJS.WriteStream) => {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (gone.has(stream)) return;
      gone.add(stream);
      if (err.code === 'EPIPE' || gone.has(other)) return;
      other.write(`provision: warning: ${name}: ${err.code ?? err.message}; no more output there, the run goes on\n`);
    });
  };
  guard(streams.stdout, 'stdout', streams.stderr);
  guard(streams.stderr, 'stderr', streams.stdout);
}

/**
 * The last net: an error that nothing caught is a bug, but it is still said in one line (plus a hint)
 * and the process ends with exit 1, not with Node's stack trace. PROVISION_DEBUG=1 shows the stack.
 */
export function installLastResortHandlers(): void {
  const die = (err: unknown) => {
    const debug = process.env.PROVISION_DEBUG === '1' && err instanceof Error && err.stack;
    const hint = err instanceof ProvisionError && err.hint ? err.hint : 'this is a bug in provision; PROVISION_DEBUG=1 prints where it happened';
    try {
      process.stderr.write(`provision: error: internal error: ${mask(errorMessage(err))}\nprovision: hint: ${mask(hint)}\n`);
      if (debug) process.stderr.write(mask(debug) + '\n');
    } finally {
      process.exit(INTERNAL_ERROR_EXIT);
    }
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
}
