import { closeSync, constants, fchmodSync, fstatSync, openSync, writeSync } from 'node:fs';
import type { EventSink } from '../executor/index.js';
import { PlainReporter } from '../report/renderers.js';
import { InputError } from '../util/errors.js';
import { mask } from '../util/secrets.js';

/** Only its owner reads a run's log: it names hosts, users, paths and every change. */
const LOG_MODE = 0o600;

/**
 * `--log FILE`: what the plain view prints, each line with its time, every registered secret
 * masked (again: events arrive masked by the executor, and a log outlives the run). Appended to,
 * never truncated; created 0600; a log readable by others is made 0600; a symlink in its place is
 * refused (O_NOFOLLOW: a link planted there would point the log, and its appends, anywhere).
 */
export function openLog(file: string, fmt: { diff: boolean; verbose: number }, now: () => Date = () => new Date()): EventSink {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW, LOG_MODE);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'is a symbolic link (refused: the log would be written wherever it points)' : code === 'ENOENT' ? 'its folder does not exist' : code === 'EACCES' ? 'permission denied' : String(code);
    throw new InputError(`--log ${file}: ${why}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new InputError(`--log ${file}: not a regular file`);
  }
  if ((st.mode & 0o077) !== 0) fchmodSync(fd, LOG_MODE);
  const plain = new PlainReporter({ ...fmt, color: false }, (text) => {
    const stamp = now().toISOString();
    const lines = text.replace(/\n$/, '').split('\n');
    writeSync(fd, lines.map((l) => `${stamp} ${mask(l)}`).join('\n') + '\n');
  });
  return {
    emit: (e) => plain.emit(e),
    close: () => closeSync(fd),
  };
}

/** Every event to each sink; closed together. */
export function teeSink(...sinks: EventSink[]): EventSink {
  return {
    emit: (e) => sinks.forEach((s) => s.emit(e)),
    close: async () => {
      for (const s of sinks) await s.close?.();
    },
  };
}
