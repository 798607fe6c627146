import type { Reporter, RunEvent } from './events.js';
import { formatEvent, type FormatOptions } from './format.js';
import { maskDeep } from '../util/secrets.js';

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

/** One JSON object per line, for machines. Secrets are masked again here, on the whole event. */
export class JsonReporter implements Reporter {
  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}
  emit(e: RunEvent): void {
    this.write(JSON.stringify(maskDeep(e)) + '\n');
  }
}

/** Collects events (tests, plans). */
export class MemoryReporter implements Reporter {
  readonly events: RunEvent[] = [];
  emit(e: RunEvent): void {
    this.events.push(e);
  }
}

export class TeeReporter implements Reporter {
  constructor(private readonly targets: Reporter[]) {}
  emit(e: RunEvent): void {
    for (const t of this.targets) t.emit(e);
  }
  async close(): Promise<void> {
    for (const t of this.targets) await t.close?.();
  }
}
