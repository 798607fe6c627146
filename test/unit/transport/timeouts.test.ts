/**
 * Every command is bounded on the host: when the bound runs out, the host stops the command and
 * every process it started, including those that left its process group (apt-get runs dpkg in a
 * session of its own), and the caller gets an error naming the command and the bound. Run through
 * a real SSH channel (in-process ssh2 server, local sh) and, for the script alone, the local sh.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InventoryError } from '../../../src/util/errors.ts';
import { runProbes } from '../../../src/facts/index.ts';
import { parseInventory } from '../../../src/inventory/index.ts';
import { fileProbe } from '../../../src/modules/lib/file-state.ts';
import { CommandTimeoutError, SshConnection } from '../../../src/transport/index.ts';
import { boundedScript, newMarkers } from '../../../src/transport/remote-command.ts';
import { fakeHost, type FakeHost } from './fake-host.ts';

/** Alive and not a zombie (an orphan's parent may be slow to reap it). */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}/stat`)) return false;
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

const dirs: string[] = [];
/** A directory for the pid files of one test, removed after it. */
const pidDir = () => {
  const d = mkdtempSync(path.join(tmpdir(), 'provision-bound-'));
  dirs.push(d);
  return d;
};

const pids = (dir: string, ...names: string[]) => names.map((n) => Number(readFileSync(path.join(dir, n), 'utf8').trim()));

/**
 * A command shaped like apt-get running dpkg: a child in a session of its own (setsid) that
 * ignores TERM, a grandchild, and the command itself waiting; each writes its pid into `dir`.
 */
const hangingTree = (dir: string) =>
  `setsid sh -c 'trap "" TERM; echo $$ > ${dir}/escaped; sleep 600 & echo $! > ${dir}/grandchild; wait' & echo $$ > ${dir}/main; sleep 600`;

let fake: FakeHost | undefined;
let conn: SshConnection | undefined;
afterEach(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  conn?.close();
  conn = undefined;
  await fake?.close();
  fake = undefined;
});

describe('the bounded script (local sh)', () => {
  it('passes stdin, output and the exit code through; a quick exit 124 of the command itself is not a timeout', () => {
    const m = newMarkers();
    const r = spawnSync('sh', ['-c', boundedScript('cat; echo err >&2; exit 3', 30, m)], { input: 'in\n', encoding: 'utf8' });
    expect(r).toMatchObject({ status: 3, stdout: 'in\n', stderr: 'err\n' });
    const own = spawnSync('sh', ['-c', boundedScript('exit 124', 30, m)], { encoding: 'utf8' });
    expect(own).toMatchObject({ status: 124, stderr: '' });
  });

  it('stops the whole tree at the bound, also what left the process group and ignores TERM, and says so with its marker', () => {
    const dir = pidDir();
    const m = newMarkers();
    const r = spawnSync('sh', ['-c', boundedScript(hangingTree(dir), 2, m)], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(124);
    expect(r.stderr).toContain(`\n${m.timedOut}\n`);
    for (const pid of pids(dir, 'main', 'escaped', 'grandchild')) expect(alive(pid), `pid ${pid}`).toBe(false);
  });
});

describe('exec over SSH: commands are bounded', () => {
  it('a command past its bound fails with the command and the bound named, and nothing of it is left running (under sudo too)', async () => {
    for (const become of [false, true]) {
      fake = await fakeHost({ asks: 'never', password: 'pw-for-timeouts' });
      conn = await SshConnection.connect(fake.host);
      const dir = pidDir();
      const err = await conn.exec(hangingTree(dir), { timeoutMs: 2000, become }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CommandTimeoutError);
      expect((err as Error).message).toMatch(/^command `setsid sh -c .*` did not finish within 2s \(its bound\); the host stopped it and every process it started$/);
      for (const pid of pids(dir, 'main', 'escaped', 'grandchild')) expect(alive(pid), `pid ${pid}`).toBe(false);
      // The connection is still good for the next command.
      expect(await conn.exec('echo ok')).toMatchObject({ stdout: 'ok\n', code: 0 });
      conn.close();
      await fake.close();
    }
    conn = undefined;
    fake = undefined;
  });

  it('a probe that hangs fails its batch naming the probe and probe_timeout; the host stops it', async () => {
    fake = await fakeHost({ asks: 'never', password: 'pw-for-timeouts' });
    fake.host.connection.probeTimeoutMs = 1000;
    conn = await SshConnection.connect(fake.host);
    const dir = pidDir();
    const probes = [fileProbe('/etc/hostname', false), { key: 'cmd:hangs', script: `echo $$ > ${dir}/main; sleep 600` }, { key: 'after', script: 'echo after' }];
    const err = await runProbes(conn, probes, true).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect((err as Error).message).toBe(`reading the host's state: probe "cmd:hangs" did not finish within 1s (probe_timeout); the host stopped it and every process it started`);
    expect(alive(pids(dir, 'main')[0]!)).toBe(false);
  });

  it('a command the host cannot end (the channel never closes): the controller gives up a little after the bound, saying so', async () => {
    fake = await fakeHost({ asks: 'never', password: 'pw-for-timeouts', stuckOn: 'STUCK' });
    conn = await SshConnection.connect(fake.host);
    const err = await conn.exec('echo STUCK', { timeoutMs: 1000, become: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect((err as CommandTimeoutError).stuck).toBe(true);
    expect((err as Error).message).toMatch(/did not finish within 1s .*the host did not end it within \d+s after that, even with KILL/);
  });
});

describe('the inventory sets the bounds', () => {
  it('command_timeout and probe_timeout are connection settings (nearest wins), in seconds; unset they are left to the defaults', () => {
    const inv = parseInventory(
      `defaults: { probe_timeout: 20 }
groups: { slow: { hosts: [db], command_timeout: 3600 } }
hosts:
  db: { address: 10.0.0.1, probe_timeout: 90 }
  web: { address: 10.0.0.2 }
`,
      '/inv/t.yml',
      {},
    );
    expect(inv.hosts.get('db')!.connection).toMatchObject({ commandTimeoutMs: 3_600_000, probeTimeoutMs: 90_000 });
    expect(inv.hosts.get('web')!.connection).toMatchObject({ commandTimeoutMs: undefined, probeTimeoutMs: 20_000 });
  });

  it('a bound that is not a positive number is bad input naming the file, line and field', () => {
    const bad = () => parseInventory('hosts:\n  web: { address: 10.0.0.2, command_timeout: 0 }\n', '/inv/t.yml', {});
    expect(bad).toThrow(InventoryError);
    expect(bad).toThrow(/^\/inv\/t\.yml:2:\d+: hosts\.web\.command_timeout: /);
  });
});
