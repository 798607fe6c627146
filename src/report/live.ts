import { Listr, type ListrTaskWrapper } from 'listr2';
import type { Reporter, RunEvent } from './events.js';
import { formatEvent, formatRecap, type FormatOptions } from './format.js';

/** How a host's line ends: `failure` set means listr2 shows it as failed. */
interface HostEnd {
  failure?: string;
}

/**
 * A host's end, settled once. Its promise only ever resolves: a failure is thrown inside the
 * listr2 task that awaits it. A promise rejected here would have no handler yet when a host fails
 * before listr2 has started its task (connection refused takes a millisecond, listr2 starts its
 * tasks on a later tick), and Node ends the process on an unhandled rejection.
 */
class HostLine {
  private settle!: (end: HostEnd) => void;
  private settled = false;
  readonly end = new Promise<HostEnd>((resolve) => (this.settle = resolve));
  counts = { changed: 0, failed: 0, ok: 0, ignored: 0, refused: 0 };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private task: ListrTaskWrapper<any, any, any> | undefined;

  constructor(private title: string) {}

  /** listr2 started this host's task (on a later tick than run-start: events may have come before). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  attach(task: ListrTaskWrapper<any, any, any>): void {
    this.task = task;
    task.title = this.title;
  }

  setTitle(title: string): void {
    this.title = title;
    if (this.task) this.task.title = title;
  }

  get isOpen(): boolean {
    return !this.settled;
  }

  finish(end: HostEnd): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(end);
  }
}

/**
 * Live progress on a TTY: one listr2 line per host showing the task it is on; what changed
 * (with diffs under --diff) and what failed is printed in full once the run ends.
 */
export class LiveReporter implements Reporter {
  private hosts = new Map<string, HostLine>();
  private buffered: RunEvent[] = [];
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly opts: FormatOptions,
    private readonly write: (s: string) => void = (s) => process.stdout.write(s),
  ) {}

  emit(e: RunEvent): void {
    switch (e.kind) {
      case 'run-start': {
        this.write(formatEvent(e, this.opts).join('\n') + '\n');
        for (const h of e.hosts) this.hosts.set(h, new HostLine(`${h}: connecting`));
        const list = new Listr(
          e.hosts.map((h) => ({
            title: `${h}: connecting`,
            // eslint-disable-next-line @typescript-eslint/no-explicit-any
            task: async (_ctx: unknown, task: ListrTaskWrapper<any, any, any>) => {
              const line = this.hosts.get(h)!;
              line.attach(task);
              const end = await line.end;
              if (end.failure) throw new Error(end.failure);
            },
          })),
          { concurrent: true, exitOnError: false, rendererOptions: { collapseErrors: false } },
        );
        this.running = list.run().catch(() => undefined);
        break;
      }
      case 'host-unreachable': {
        this.buffered.push(e);
        const line = this.hosts.get(e.host);
        line?.setTitle(`${e.host}: UNREACHABLE`);
        line?.finish({ failure: e.reason });
        break;
      }
      case 'task-start': {
        this.hosts.get(e.host)?.setTitle(`${e.host}: ${e.handler ? 'handler ' : ''}${e.role ? e.role + ' : ' : ''}${e.task}`);
        break;
      }
      case 'task-result': {
        const c = this.hosts.get(e.host)?.counts;
        if (c && e.status in c) c[e.status as keyof typeof c]++;
        if (e.status !== 'ok' && e.status !== 'skipped') this.buffered.push(e);
        else if (this.opts.verbose) this.buffered.push(e);
        break;
      }
      case 'recap': {
        for (const [h, line] of this.hosts) {
          const c = line.counts;
          if (line.isOpen) line.setTitle(`${h}: ok=${c.ok} changed=${c.changed} failed=${c.failed}${c.ignored ? ` ignored=${c.ignored}` : ''}`);
          if (c.failed) line.finish({ failure: `${h}: ${c.failed} task(s) failed` });
          else if (c.refused) line.finish({ failure: `${h}: refused: the run would have done what the plan does not show` });
          else line.finish({});
        }
        this.buffered.push(e);
        break;
      }
      default:
        this.buffered.push(e);
    }
  }

  async close(): Promise<void> {
    // A run that threw never sent its recap: end every line still open, or listr2 waits forever.
    for (const [h, line] of this.hosts) line.finish({ failure: `${h}: the run stopped before this host finished` });
    await this.running;
    const out: string[] = [];
    for (const e of this.buffered) {
      if (e.kind === 'recap') out.push('', ...formatRecap(e.hosts, e.wallMs, e.check, this.opts.color));
      else out.push(...formatEvent(e, this.opts));
    }
    if (out.length) this.write(out.join('\n') + '\n');
  }
}
