import type { Connector, HostSession } from '../../../src/executor/index.js';
import type { Facts, ProbeResult, RawProbe } from '../../../src/facts/index.js';
import type { Host } from '../../../src/inventory/index.js';
import type { Connection, ExecOptions, ExecResult } from '../../../src/transport/index.js';
import { debianFacts } from '../modules/fixtures.js';

/** `false` fails with a message, any other command succeeds with no output. */
function defaultAnswer(command: string): ExecResult {
  return command === 'false' ? { stdout: '', stderr: 'it went wrong', code: 1 } : { stdout: '', stderr: '', code: 0 };
}

/**
 * Recorded outputs instead of a host: `false` fails with a message, any other command succeeds
 * with no output. Every command is kept, so a test can say what ran and what never did.
 */
export class RecordedConnection implements Connection {
  readonly hostName = 'web-01';
  readonly roundTrips = 0;
  readonly probeTimeoutMs = 60_000;
  readonly ran: string[] = [];
  async exec(command: string, _opts?: ExecOptions): Promise<ExecResult> {
    this.ran.push(command);
    return defaultAnswer(command);
  }
  forward(): never {
    throw new Error('no forwarding here');
  }
  close(): void {}
}

export interface RecordedSessionOptions {
  facts?: Facts;
  /** Probe answers by key (a string is stdout with exit 0). A probe without an answer fails the test. */
  answers?: Record<string, ProbeResult | string> | Iterable<[string, ProbeResult]>;
  /** The answer to a command (undefined: the default, where only `false` fails). */
  respond?: (command: string, stdin: string | undefined) => ExecResult | undefined;
}

/**
 * A host as the executor sees it (HostSession), recorded: probes are answered by key from a table,
 * every command is kept with its stdin, every batched read with the keys it asked for. What a test
 * can then say: which commands ran and in what order, which never did, how many round trips.
 */
export class RecordedSession implements HostSession {
  readonly ran: string[] = [];
  readonly stdins: Array<string | undefined> = [];
  /** The probe keys of each batched read, in order. */
  readonly reads: string[][] = [];
  readonly probeTimeoutMs = 60_000;
  roundTrips = 0;
  factsReads = 0;
  freshLogins = 0;
  private readonly answers = new Map<string, ProbeResult>();
  private readonly factsValue: Facts;

  constructor(private readonly opts: RecordedSessionOptions = {}) {
    this.factsValue = opts.facts ?? debianFacts();
    this.answer(opts.answers ?? {});
  }

  /** Set (or change, as a command would) probe answers. */
  answer(answers: Record<string, ProbeResult | string> | Iterable<[string, ProbeResult]>): void {
    const entries = Symbol.iterator in answers ? [...(answers as Iterable<[string, ProbeResult]>)] : Object.entries(answers);
    for (const [k, v] of entries) this.answers.set(k, typeof v === 'string' ? { stdout: v, code: 0 } : v);
  }

  async facts(): Promise<Facts> {
    this.roundTrips++;
    this.factsReads++;
    return this.factsValue;
  }

  async read(probes: readonly RawProbe[]): Promise<Map<string, ProbeResult>> {
    this.roundTrips++;
    this.reads.push(probes.map((p) => p.key));
    return new Map(
      probes.map((p) => {
        const a = this.answers.get(p.key);
        if (!a) throw new Error(`RecordedSession: no recorded answer for probe "${p.key}"`);
        return [p.key, a];
      }),
    );
  }

  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    this.roundTrips++;
    const stdin = opts.stdin === undefined ? undefined : String(opts.stdin);
    this.ran.push(command);
    this.stdins.push(stdin);
    return this.opts.respond?.(command, stdin) ?? defaultAnswer(command);
  }

  async freshLogin(): Promise<void> {
    this.freshLogins++;
  }
}

/** Recorded hosts for runPlaybook: one RecordedSession per host name, made on first open. */
export class RecordedConnector implements Connector {
  readonly sessions = new Map<string, RecordedSession>();
  /** Every open, by host name: one per host and run is what `apply` promises. */
  readonly opened: string[] = [];
  closed = 0;

  constructor(
    private readonly make: (host: Host) => RecordedSession = () => new RecordedSession(),
    /** Hosts that cannot be reached: open() fails with this reason. */
    private readonly down: Record<string, Error> = {},
  ) {}

  async open(host: Host): Promise<HostSession> {
    this.opened.push(host.name);
    if (this.down[host.name]) throw this.down[host.name];
    let s = this.sessions.get(host.name);
    if (!s) this.sessions.set(host.name, (s = this.make(host)));
    return s;
  }

  async close(): Promise<void> {
    this.closed++;
  }
}
