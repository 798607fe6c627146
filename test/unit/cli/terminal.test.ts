/**
 * The terminal view and pipes, with hosts that fail at first contact (no lab needed): a loopback
 * port nobody listens on (connection refused), a name that does not resolve, an identity file
 * that does not exist, and a port that accepts and never speaks (unreachable after its timeout).
 * Under a pseudo-terminal the live view must end with exit 3 and a recap, never a stack trace;
 * piped into `head -1`, every output mode stops writing quietly and keeps its exit code.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { emptyCounts } from '../../../src/report/events.ts';
import { LiveReporter } from '../../../src/report/live.ts';
import { hangUpMidRun, intoHeadOne, LIVE_VIEW_MARK, recapLine, scratchDir, STACK_TRACE, underTerminal, writeFile, type OutputMode } from './terminal-helpers.ts';

let dir: string;
let playbook: string;
let silent: Server;
const sockets = new Set<Socket>();
let silentPort: number;

const HOSTS = {
  refused: () => `  refused: { address: 127.0.0.1, port: 1, connect_timeout: 5 }\n`,
  nodns: () => `  nodns: { address: no-such-host.invalid, connect_timeout: 5 }\n`,
  nokey: () => `  nokey: { address: 127.0.0.1, port: 1, identity_file: /nonexistent/provision-test/id_ed25519 }\n`,
  silent: () => `  silent: { address: 127.0.0.1, port: ${silentPort}, connect_timeout: 2 }\n`,
};

function inventory(...hosts: string[]): string {
  return writeFile(dir, `inv-${Math.random().toString(36).slice(2, 8)}.yml`, `hosts:\n${hosts.join('')}`);
}

beforeAll(async () => {
  dir = scratchDir();
  playbook = writeFile(dir, 'play.yml', '- name: one task\n  hosts: all\n  tasks:\n    - name: say hi\n      command: { cmd: "true" }\n');
  // Accepts TCP and never sends the SSH banner: the host is unreachable only after connect_timeout,
  // so a reader that stopped after the first line is surely gone when the next lines are written.
  silent = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentPort = (silent.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
});

// Each test is a CLI process of its own: run them side by side.
describe.concurrent('the live view under a pseudo-terminal, hosts failing at first contact', () => {
  it.each([
    ['connection refused on a loopback port nobody listens on', ['refused'], /refused: .*connection refused/],
    ['a name that does not resolve', ['nodns'], /nodns: .*address does not resolve/],
    ['an identity file that does not exist', ['nokey'], /nokey: .*cannot read identity file \/nonexistent\/provision-test\/id_ed25519/],
    // ssh2 emits a second error when the timed-out socket closes: with no listener left it ended the process.
    ['a port that accepts and never speaks (connect timeout)', ['silent'], /silent: .*connection timed out after 2s/],
    ['all four at once', ['refused', 'nodns', 'nokey', 'silent'], /refused: .*connection refused/],
  ] as const)('%s: exit 3, a recap, no stack trace', async (_name, hosts, reason) => {
    const { code, screen, raw } = await underTerminal(['-i', inventory(...hosts.map((h) => HOSTS[h]())), '-p', playbook]);
    expect(raw, 'the live view ran (not the plain fallback)').toContain(LIVE_VIEW_MARK);
    expect(screen).not.toMatch(STACK_TRACE);
    expect(code, screen).toBe(3);
    expect(screen).toMatch(reason);
    expect(screen).toContain('RECAP');
    for (const h of hosts) expect(recapLine(screen, h), screen).toMatch(/ok=0\s+changed=0\s+failed=0\s+unreachable=1/);
  });

  it('a terminal that reports no width gets plain lines (the live view would put each character on a line)', async () => {
    const { code, screen, raw } = await underTerminal(['-i', inventory(HOSTS.refused()), '-p', playbook], { columns: 0 });
    expect(raw).not.toContain(LIVE_VIEW_MARK);
    expect(screen).toMatch(/^refused: UNREACHABLE: root@127\.0\.0\.1:1: connection refused$/m);
    expect(screen).not.toMatch(STACK_TRACE);
    expect(code).toBe(3);
    expect(recapLine(screen, 'refused')).toMatch(/unreachable=1/);
  });
});

describe.concurrent('every output mode piped into head -1', () => {
  it.each(['plain', 'json', 'live'] as OutputMode[])('%s: the first line, exit 3, nothing on stderr but the run', async (mode) => {
    const inv = inventory(HOSTS.silent(), HOSTS.refused());
    const r = await intoHeadOne(mode, ['-i', inv, '-p', playbook]);
    expect(r.stderr).not.toMatch(STACK_TRACE);
    expect(r.stderr).not.toMatch(/EPIPE|EIO/);
    expect(r.code, r.stderr).toBe(3);
    if (mode === 'json') expect(JSON.parse(r.firstLine)).toMatchObject({ kind: 'run-start', hosts: ['silent', 'refused'] });
    else expect(r.firstLine).toContain('on 2 host(s) of');
  });
});

describe('the terminal hangs up mid-run (an SSH session to the control machine drops)', () => {
  it('the run goes on to its end and its own exit code (3), not killed by SIGHUP, not aborted by Node on exit', async () => {
    // The silent host keeps the run going for its 2 s connect timeout after the terminal is gone.
    expect(await hangUpMidRun(['-i', inventory(HOSTS.silent(), HOSTS.refused()), '-p', playbook])).toBe('exit 3');
  });
});

describe('LiveReporter in-process', () => {
  it('a host unreachable before listr2 has started its task ends as unreachable, with no unhandled rejection', async () => {
    const rejections: unknown[] = [];
    const onRejection = (e: unknown) => rejections.push(e);
    process.on('unhandledRejection', onRejection);
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const written: string[] = [];
      const r = new LiveReporter({ diff: false, verbose: 0, color: false }, (s) => written.push(s));
      // All in one tick, as a refused connection does: listr2 has not run any task yet.
      r.emit({ kind: 'run-start', inventory: 'i', playbook: 'p', hosts: ['a', 'b'], check: false, time: '' });
      r.emit({ kind: 'host-unreachable', host: 'a', reason: 'root@127.0.0.1:1: connection refused' });
      r.emit({ kind: 'host-unreachable', host: 'b', reason: 'root@127.0.0.1:1: connection refused' });
      // Let a few ticks pass, as the run's recap does not come at once either.
      await new Promise((res) => setTimeout(res, 20));
      const counts = { ...emptyCounts(), unreachable: 1 };
      r.emit({ kind: 'recap', hosts: { a: counts, b: counts }, wallMs: 1, check: false, exitCode: 3 });
      await r.close();
      await new Promise((res) => setTimeout(res, 20));
      expect(rejections).toEqual([]);
      const text = written.join('');
      expect(text).toContain('a: UNREACHABLE: root@127.0.0.1:1: connection refused');
      expect(text).toMatch(/^RECAP$/m);
    } finally {
      process.off('unhandledRejection', onRejection);
      vi.restoreAllMocks();
    }
  });

  it('a run that throws after run-start (no recap) still lets close() finish', async () => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const r = new LiveReporter({ diff: false, verbose: 0, color: false }, () => undefined);
      r.emit({ kind: 'run-start', inventory: 'i', playbook: 'p', hosts: ['a'], check: false, time: '' });
      r.emit({ kind: 'task-start', host: 'a', task: 't' });
      await r.close(); // resolves: before the fix it waited for ever for a host that never ended
    } finally {
      vi.restoreAllMocks();
    }
  }, 15_000);
});
