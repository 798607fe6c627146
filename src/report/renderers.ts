import type { Reporter, RunEvent } from '../executor/events.js';
import { formatEvent, type FormatOptions } from './format.js';

/** Plain lines, for logs and non-TTY output. */
export class PlainReporter implements Reporter {
  constructor(
    private readonly opts: FormatOptions,
    private readonly write: (s: string) => void = (s) => process.stdout.write(s),
  ) {}
  emit(e: RunEvent): void {
    for (const line of formatEvent(e, this.opts)) this.write(line + '\n');
  }
}

/** One JSON object per line, for machines. (Events come masked: the executor's maskedSink.) */
export class JsonReporter implements Reporter {
  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}
  emit(e: RunEvent): void {
    this.write(JSON.stringify(e) + '\n');
  }
}

/** Collects events (tests, plans). */
export class MemoryReporter implements Reporter {
  readonly events: RunEvent[] = [];
  emit(e: RunEvent): void {
    this.events.push(e);
  }
}
