/**
 * The database health agent (src/roles/db_health/files/db-health-agent.pl) as systemd runs it: one perl
 * process, listening on a port, its `mysql` client a stand-in that answers the agent's queries on its
 * pipe as a server would (batch mode: a header line, then one line a row), from files the test changes
 * while the agent runs: `ro` (read_only), `slave` (SHOW SLAVE STATUS, header + row; absent: none),
 * `hang` (no answer), `gone` (the server goes away mid-session), `down` (no connection at all), `warn`
 * (a line before any result). Each
 * client start is a line in `starts`, each poll answered a line in `polls`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const AGENT = path.resolve(import.meta.dirname, '../../../src/roles/db_health/files/db-health-agent.pl');
const POLL_MS = 50;
// The bound past which a state counts as stale and a silent client is replaced: the product's default
// (2000 ms), not a tighter one: on a loaded 2-core machine the stand-in client (a shell loop that starts
// `cat` per query) can take several hundred ms to answer, and a replaced client fails "one client start".
const MAX_AGE_MS = 2000;

const FAKE_CLIENT = `#!/bin/sh
D=$(dirname "$0")
echo $$ >> "$D/starts"
[ "$1" = "--defaults-extra-file=$D/client.cnf" ] || { echo "ERROR 1045 (28000): bad login option $1"; exit 1; }
[ -e "$D/warn" ] && echo "mysql: [Warning] a line before any result"
[ -e "$D/down" ] && { echo "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)"; exit 1; }
while IFS= read -r line; do
  [ -e "$D/gone" ] && { echo "ERROR 2006 (HY000) at line 1: MySQL server has gone away"; exit 1; }
  while [ -e "$D/hang" ]; do sleep 0.05; done
  case $line in
    'SELECT @@read_only AS provision_read_only;') printf 'provision_read_only\\n%s\\n' "$(cat "$D/ro")" ;;
    'SHOW SLAVE STATUS;') [ -e "$D/slave" ] && cat "$D/slave" ;;
    *' AS provision_poll_end;') n=\${line#SELECT }; printf 'provision_poll_end\\n%s\\n' "\${n%% *}"; echo . >> "$D/polls" ;;
    *) echo "ERROR 1064 (42000) at line 1: unexpected query: $line"; exit 1 ;;
  esac
done
`;

/** SHOW SLAVE STATUS in batch mode: the header line, then the row (the columns the agent reads among others). */
const slave = (io: string, applier: string, lag: string) =>
  `Slave_IO_State\tMaster_Host\tSlave_IO_Running\tSlave_SQL_Running\tLast_Error\tSeconds_Behind_Master\n` +
  `Waiting for master to send event\t10.9.0.21\t${io}\t${applier}\t\t${lag}\n`;

interface Agent {
  dir: string;
  proc: ChildProcess;
  port: number;
  log: () => string[];
  set: (name: 'ro' | 'slave' | 'hang' | 'gone' | 'down' | 'warn', content?: string) => void;
  starts: () => number;
  polls: () => number;
}

let running: Agent | undefined;
afterEach(() => {
  running?.proc.kill('SIGKILL');
  running = undefined;
});

async function startAgent(maxLag = 30): Promise<Agent> {
  const dir = mkdtempSync(path.join(tmpdir(), 'db-health-agent-'));
  writeFileSync(path.join(dir, 'mysql'), FAKE_CLIENT);
  chmodSync(path.join(dir, 'mysql'), 0o755);
  writeFileSync(path.join(dir, 'client.cnf'), '[client]\n');
  writeFileSync(path.join(dir, 'ro'), '0');
  const args = ['--listen', '127.0.0.1', '--port', '0', '--max-lag', String(maxLag), '--poll-ms', String(POLL_MS), '--max-age-ms', String(MAX_AGE_MS)];
  const proc = spawn('perl', [AGENT, ...args, '--client', path.join(dir, 'mysql'), '--client-config', path.join(dir, 'client.cnf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const log = () => stderr.split('\n').filter(Boolean);
  expect(await until(() => /listening on 127\.0\.0\.1:(\d+)/.test(stderr) || proc.exitCode !== null), stderr).toBe(true);
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(stderr)?.[1]);
  const count = (f: string) => (existsSync(path.join(dir, f)) ? readFileSync(path.join(dir, f), 'utf8').split('\n').filter(Boolean).length : 0);
  running = {
    dir,
    proc,
    port,
    log,
    // Written whole (a temporary file renamed over it): the stand-in client must never `cat` a file the
    // test has truncated and not yet written (it read "" for read_only: the agent rightly replaced it).
    set: (name, content) => {
      if (content === undefined) return rmSync(path.join(dir, name), { force: true });
      writeFileSync(path.join(dir, `.${name}.new`), content);
      renameSync(path.join(dir, `.${name}.new`), path.join(dir, name));
    },
    starts: () => count('starts'),
    polls: () => count('polls'),
  };
  return running;
}

/** Bounded: at most 200 tries, 50 ms apart (10 s). */
async function until(cond: () => boolean | Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** One check as HAProxy sends it (`http-check send meth GET uri … ver HTTP/1.0`): the status line's code and the body. */
function check(a: Agent, pathname: string, request = `GET ${pathname} HTTP/1.0\r\n\r\n`): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(a.port, '127.0.0.1');
    let data = '';
    s.setTimeout(5000, () => s.destroy(new Error('no answer within 5 s')));
    s.on('connect', () => s.write(request));
    s.on('data', (d) => (data += d.toString()));
    s.on('error', reject);
    s.on('close', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n');
      const length = Number(/Content-Length: (\d+)/.exec(head)?.[1]);
      if (length !== Buffer.byteLength(body)) return reject(new Error(`Content-Length ${length} for a body of ${Buffer.byteLength(body)} bytes: ${data}`));
      resolve({ code: Number(/^HTTP\/1\.0 (\d{3}) /.exec(head)?.[1]), body: body.trim() });
    });
  });
}
const answers = async (a: Agent) => ({ write: await check(a, '/write'), read: await check(a, '/read') });
const codes = async (a: Agent) => {
  const r = await answers(a);
  return `${r.write.code} ${r.read.code}`;
};

describe('the database health agent: one process, one connection, answers from memory', () => {
  it('answers hundreds of checks with one process and one client connection, the state refreshed every poll, no journal line per check', async () => {
    const a = await startAgent();
    expect(await until(async () => (await codes(a)) === '200 503'), a.log().join('\n')).toBe(true);
    const pollsBefore = a.polls();
    for (let i = 0; i < 150; i++) {
      expect(await answers(a)).toEqual({ write: { code: 200, body: 'writable primary' }, read: { code: 503, body: 'not a replica' } });
    }
    // Still the one process (no fork per check: its client is the only child it ever started), one connection, still polling.
    expect(a.proc.exitCode).toBe(null);
    expect(a.starts()).toBe(1);
    expect(a.polls()).toBeGreaterThan(pollsBefore);
    // The journal: its start, and the one answer change (no state → primary); nothing for 300 checks.
    expect(a.log()).toHaveLength(3);
    expect(a.log().at(-1)).toBe('/write 200 OK (writable primary); /read 503 Service Unavailable (not a replica)');
  });

  it('/read: 200 on a replica with both threads running and lag within the bound; 503 for a stopped thread, lag unknown or above it; /write 503 on any replica', async () => {
    const a = await startAgent(30);
    a.set('ro', '1');
    a.set('slave', slave('Yes', 'Yes', '30'));
    // Waited for by the answers' text, not their codes: one poll may read `ro` before the test's first
    // write and `slave` after its second (read_only 0 and replicating: also "503 200").
    const replica = { write: { code: 503, body: 'read-only: not the primary' }, read: { code: 200, body: 'replica, lag 30 s' } };
    expect(await until(async () => JSON.stringify(await answers(a)) === JSON.stringify(replica))).toBe(true);
    expect(await answers(a)).toEqual(replica);
    const readBody = async (state: string, expected: string) => {
      a.set('slave', state);
      expect(await until(async () => (await check(a, '/read')).body === expected), `${state} → ${expected}`).toBe(true);
      expect((await check(a, '/read')).code).toBe(expected.startsWith('replica, lag') ? 200 : 503);
    };
    await readBody(slave('Yes', 'Yes', '31'), 'lag 31 s above 30 s');
    await readBody(slave('Yes', 'No', 'NULL'), 'replication threads IO Yes, SQL No');
    await readBody(slave('Connecting', 'Yes', '0'), 'replication threads IO Connecting, SQL Yes');
    await readBody(slave('Yes', 'Yes', 'NULL'), 'lag unknown (NULL)');
    await readBody(slave('Yes', 'Yes', '0'), 'replica, lag 0 s');
    // Writable but still replicating (a promotion half done): not a primary.
    a.set('ro', '0');
    expect(await until(async () => (await check(a, '/write')).body === 'writable but replicating: not a primary')).toBe(true);
    expect(a.starts()).toBe(1);
  });

  it('fails closed: a server that stops answering, goes away or refuses connections fails both checks, and the agent reconnects when it is back', async () => {
    const a = await startAgent();
    expect(await until(async () => (await codes(a)) === '200 503')).toBe(true);
    // Hangs: no answer to the poll in flight. The state ages past the bound: 503, the client is replaced.
    a.set('hang', '');
    expect(await until(async () => (await codes(a)) === '503 503'), a.log().join('\n')).toBe(true);
    expect(await until(async () => (await check(a, '/write')).body === 'no state: no answer from the local server within 2.0 s'), a.log().join('\n')).toBe(true);
    a.set('hang');
    expect(await until(async () => (await codes(a)) === '200 503'), a.log().join('\n')).toBe(true);
    expect(a.starts()).toBe(2);
    // Goes away mid-session: the client ends; a new one connects at most once a second.
    a.set('down', '');
    a.set('gone', '');
    expect(await until(async () => (await check(a, '/write')).code === 503)).toBe(true);
    expect(await until(async () => /ERROR 2002/.test((await check(a, '/write')).body)), (await check(a, '/write')).body).toBe(true);
    // Back, its client printing a warning before any result: the answers are read all the same.
    a.set('warn', '');
    a.set('gone');
    a.set('down');
    expect(await until(async () => (await codes(a)) === '200 503'), a.log().join('\n')).toBe(true);
    expect(a.proc.exitCode).toBe(null);
    // One journal line per change, with the reason: primary, stale, primary, stale (or gone), primary.
    const changes = a.log().slice(1);
    expect(changes.length, changes.join('\n')).toBeLessThanOrEqual(6);
    expect(changes.filter((l) => l.startsWith('/write 503')).every((l) => /^\/write 503 Service Unavailable \((state \d+\.\d s old|no state): /.test(l))).toBe(true);
  });

  it('anything but GET /write or /read: 404 or 405; a connection that sends nothing is closed', async () => {
    const a = await startAgent();
    expect(await until(async () => (await codes(a)) === '200 503')).toBe(true);
    expect(await check(a, '/')).toEqual({ code: 404, body: 'GET /write or /read' });
    expect(await check(a, '/write', 'POST /write HTTP/1.0\r\nContent-Length: 0\r\n\r\n')).toEqual({ code: 405, body: 'GET only' });
    // HAProxy's check, or curl's with headers: the same answer.
    expect((await check(a, '/write', 'GET /write HTTP/1.1\r\nHost: 10.9.0.21:9200\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n')).code).toBe(200);
    const silent = await new Promise<string>((resolve) => {
      const s = connect(a.port, '127.0.0.1');
      s.setTimeout(8000, () => { s.destroy(); resolve('still open after 8 s'); });
      s.on('close', () => resolve('closed'));
      s.on('error', () => resolve('closed'));
    });
    expect(silent).toBe('closed');
  });

  it('refuses a bad option at start with one clear error', async () => {
    const p = spawn('perl', [AGENT, '--poll-ms', 'soon'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => p.on('close', r));
    expect([code, err.trim()]).toEqual([255, "db-health-agent: --poll-ms wants a whole number, not 'soon'"]);
  });
});
