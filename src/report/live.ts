import { Listr, type ListrTaskWrapper } from 'listr2';
import type { Reporter, RunEvent } from './events.js';
import { formatEvent, formatRecap, type FormatOptions } from './format.js';

interface Deferred {
  resolve: () => void;
  reject: (e: Error) => void;
  promise: Promise<void>;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { resolve, reject, promise };
}

/**
 * Live progress on a TTY: one listr2 line per host showing the task it is on; what changed
 * (with diffs under --diff) and what failed is printed in full once the run ends.
 */
export class LiveReporter implements Reporter {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private tasks = new Map<string, ListrTaskWrapper<any, any, any>>();
  private done = new Map<string, Deferred>();
  private counts = new Map<string, { changed: number; failed: number; ok: number }>();
  private buffered: RunEvent[] = [];
  private running: Promise<unknown> | undefined;

  constructor(private readonly opts: FormatOptions) {}

  emit(e: RunEvent): void {
    switch (e.kind) {
      case 'run-start': {
        process.stdout.write(formatEvent(e, this.opts).join('\n') + '\n');
        for (const h of e.hosts) {
          this.done.set(h, deferred());
          this.counts.set(h, { changed: 0, failed: 0, ok: 0 });
        }
        const list = new Listr(
          e.hosts.map((h) => ({
            title: `${h}: connecting`,
            task: (_ctx: unknown, task: ListrTaskWrapper<any, any, any>) => {
              this.tasks.set(h, task);
              return this.done.get(h)!.promise;
            },
          })),
          { concurrent: true, exitOnError: false, rendererOptions: { collapseErrors: false } },
        );
        this.running = list.run().catch(() => undefined);
        break;
      }
      case 'host-unreachable':
        this.buffered.push(e);
        this.done.get(e.host)?.reject(new Error(`${e.host}: unreachable: ${e.reason}`));
        break;
      case 'task-start': {
        const t = this.tasks.get(e.host);
        if (t) t.title = `${e.host}: ${e.handler ? 'handler ' : ''}${e.role ? e.role + ' : ' : ''}${e.task}`;
        break;
      }
      case 'task-result': {
        const c = this.counts.get(e.host);
        if (c && (e.status === 'ok' || e.status === 'changed' || e.status === 'failed')) c[e.status]++;
        if (e.status === 'changed' || e.status === 'failed' || (e.note && this.opts.verbose)) this.buffered.push(e);
        if (this.opts.verbose && e.status === 'ok') this.buffered.push(e);
        break;
      }
      case 'recap': {
        for (const [h, d] of this.done) {
          const c = this.counts.get(h)!;
          const t = this.tasks.get(h);
          if (t) t.title = `${h}: ok=${c.ok} changed=${c.changed} failed=${c.failed}`;
          if (c.failed) d.reject(new Error(`${h}: ${c.failed} task(s) failed`));
          else d.resolve();
        }
        this.buffered.push(e);
        break;
      }
      default:
        this.buffered.push(e);
    }
  }

  async close(): Promise<void> {
    await this.running;
    const out: string[] = [];
    for (const e of this.buffered) {
      if (e.kind === 'recap') out.push('', ...formatRecap(e.hosts, e.wallMs, e.check, this.opts.color));
      else out.push(...formatEvent(e, this.opts));
    }
    if (out.length) process.stdout.write(out.join('\n') + '\n');
  }
}
