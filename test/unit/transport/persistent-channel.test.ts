/**
 * One long-lived channel per host and identity (the default; transport/channel.ts),
 * against the in-process SSH server whose exec requests are counted (each one a channel of its own)
 * and a fake sudo that asks like the real one (fake-host.ts). Every command must come back exactly as
 * exec gives it: stdout, stderr, code, timeouts, sudo's errors.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CommandTimeoutError, SshConnection } from '../../../src/transport/index.ts';
import { frame, READER } from '../../../src/transport/channel.ts';
import { ConnectionError } from '../../../src/util/errors.ts';
import { fakeHost, type FakeHost, type SudoAsks } from './fake-host.ts';

const PASSWORD = 'Tr0ub4dor&3;echo LEAKED';

let fake: FakeHost | undefined;
const conns: SshConnection[] = [];

async function open(asks: SudoAsks, become = true, channel: 'exec' | 'persistent' = 'persistent'): Promise<SshConnection> {
  fake ??= await fakeHost({ asks, password: PASSWORD });
  const c = await SshConnection.connect({ ...fake.host, connection: { ...fake.host.connection, become } }, undefined, channel);
  conns.push(c);
  return c;
}

afterEach(async () => {
  for (const c of conns.splice(0)) c.close();
  await fake?.close();
  fake = undefined;
});

/** Commands whose output and stdin look like the protocol's own lines, or end without a newline. */
const CASES: { command: string; stdin?: string | Buffer }[] = [
  { command: 'echo hello' },
  { command: 'printf "no newline"; printf "err no newline" >&2; exit 3' },
  { command: 'cat', stdin: '@@provision-end-0123 0\n#0123\n0 5 5\nwhile read -r n s i\n' },
  { command: 'cat', stdin: Buffer.from([1, 2, 3, 0xc3, 0xa9, 0x7f, 0x0a, 0x0a, 0xff, 0xfe]) },
  { command: "printf '@@provision-end-%s 0\\n' 0123456789abcdef01234567; printf '@@provision-end-0 0\\n' >&2; exit 7" },
  { command: 'head -c 3; echo; cat >/dev/null; echo done', stdin: 'abcdef'.repeat(50_000) },
  { command: 'head -c 2', stdin: 'xyz-left-over-must-not-reach-the-next-header\n0 0 0\n' },
  { command: "printf '%s' \"$(cat)\" | wc -c", stdin: 'é'.repeat(1000) },
  { command: 'read -r line; echo "got $line"; exit 0', stdin: 'one line\nand more\n' },
  { command: 'echo out; echo err >&2; false' },
  { command: 'echo "trailing newlines"; printf "\\n\\n\\n"' },
  // Many chunks (searched once each, an end line split over two of them), on both streams; together
  // under ssh2's 2 MiB channel window. At 3.5 MB the in-process ssh2 *server* (not the client under
  // test) lost a channel's end under a loaded CI run (exit status and most of stderr missing, on the
  // exec path this test compares with: see helpers/sh-server.ts); past-the-window output against
  // OpenSSH is the lab's (test/integration/persistent-channel.test.ts).
  { command: 'yes abcdefghij | head -c 1200000; yes err | head -c 300000 >&2' },
];

describe('persistent channel: the same results as exec, over one channel', () => {
  it('N commands after the first cost one more channel, not N; each result equals exec\'s', async () => {
    const exec = await open('never', false, 'exec');
    const expected = [];
    for (const k of CASES) expected.push(await exec.exec(k.command, { stdin: k.stdin }));
    const before = fake!.execs().length;
    const c = await open('never', false);
    for (let round = 0; round < 2; round++) {
      for (const [i, k] of CASES.entries()) expect(await c.exec(k.command, { stdin: k.stdin }), CASES[i]!.command).toEqual(expected[i]);
    }
    // The first command by exec, then one channel running the reader for the other 2N-1.
    expect(fake!.execs().length - before).toBe(2);
    expect(fake!.execs().at(-1)).toContain('while read -r n s i');
    expect(c.roundTrips).toBe(2 * CASES.length);
  });

  it('is the default: a host whose inventory sets no channel sends its later commands through one reader; channel: exec a channel each', async () => {
    fake = await fakeHost({ asks: 'never', password: PASSWORD });
    const plain = { ...fake.host, connection: { ...fake.host.connection, become: false, channel: undefined } };
    const byDefault = await SshConnection.connect(plain);
    conns.push(byDefault);
    let before = fake.execs().length;
    for (let i = 0; i < 4; i++) expect(await byDefault.exec(`echo ${i}`)).toEqual({ stdout: `${i}\n`, stderr: '', code: 0 });
    expect(fake.execs().length - before).toBe(2);
    const audited = await SshConnection.connect({ ...plain, connection: { ...plain.connection, channel: 'exec' } });
    conns.push(audited);
    before = fake.execs().length;
    for (let i = 0; i < 4; i++) await audited.exec(`echo ${i}`);
    expect(fake.execs().length - before).toBe(4);
  });

  it('a command that outlives its bound is stopped by the host; the next one runs on the same channel', async () => {
    const c = await open('never', false);
    await c.exec('true');
    await c.exec('true');
    const execs = fake!.execs().length;
    const err = await c.exec('echo before; sleep 60', { timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandTimeoutError);
    expect((err as CommandTimeoutError).stuck).toBe(false);
    expect((err as CommandTimeoutError).stdout).toBe('before\n');
    expect(await c.exec('echo after')).toEqual({ stdout: 'after\n', stderr: '', code: 0 });
    expect(fake!.execs().length).toBe(execs);
  });

  it('when the reader dies under a command, that command fails as an exec without exit status, and the next opens a new reader', async () => {
    const c = await open('never', false);
    await c.exec('true');
    await c.exec('true');
    const execs = fake!.execs().length;
    const killReader =
      `p=$$;while [ "$p" -gt 1 ];do if grep -q 'while read -r n s [i]' /proc/$p/cmdline 2>/dev/null;then kill -9 $p;break;fi;` +
      `p=$(awk '{print $4}' /proc/$p/stat);done;echo killed`;
    const r = await c.exec(killReader);
    expect(r.code).toBe(255);
    expect(await c.exec('echo next')).toEqual({ stdout: 'next\n', stderr: '', code: 0 });
    expect(fake!.execs().length).toBe(execs + 1);
  });

  it('two commands at once: one goes through the reader, the other by exec; both right', async () => {
    const c = await open('never', false);
    await c.exec('true');
    const [a, b] = await Promise.all([c.exec('sleep 0.3; echo a'), c.exec('echo b', { stdin: 'ignored' })]);
    expect(a).toEqual({ stdout: 'a\n', stderr: '', code: 0 });
    expect(b).toEqual({ stdout: 'b\n', stderr: '', code: 0 });
  });

  it('a garbled frame ends the reader without running anything', async () => {
    const { spawnSync } = await import('node:child_process');
    const good = frame('abc123', 'echo ran', undefined);
    const truncated = Buffer.concat([Buffer.from('abc123 30 0\n'), Buffer.from('echo ran\n')]);
    const r1 = spawnSync('sh', ['-c', READER], { input: good });
    expect(r1.stdout.toString()).toBe('ran\n@@provision-end-abc123 0\n');
    const r2 = spawnSync('sh', ['-c', READER], { input: truncated });
    expect(r2.stdout.toString()).toBe('');
    expect(r2.status).toBe(98);
    const r3 = spawnSync('sh', ['-c', READER], { input: Buffer.from('abc;touch /tmp/x 1 0\nx') });
    expect(r3.status).toBe(97);
  });
});

describe('persistent channel under sudo', () => {
  for (const asks of ['never', 'always', 'cached'] as const) {
    it(`sudo that asks ${asks}: one reader per identity, the password sent once in answer to the prompt, stdin exact`, async () => {
      const c = await open(asks);
      const content = 'line one\n[provision sudo x] password: \n';
      for (let i = 0; i < 4; i++) expect(await c.exec('cat; echo "to stderr" >&2', { stdin: content })).toEqual({ stdout: content, stderr: 'to stderr\n', code: 0 });
      // The login user's own commands go through a reader of their own.
      expect(await c.exec('echo as login', { become: false })).toEqual({ stdout: 'as login\n', stderr: '', code: 0 });
      expect(await c.exec('echo as login', { become: false })).toEqual({ stdout: 'as login\n', stderr: '', code: 0 });
      const readers = fake!.execs().filter((e) => e.includes('while read -r n s i'));
      expect(readers).toHaveLength(2);
      expect(readers[0]).toMatch(/^sudo /);
      expect(readers[1]).toMatch(/^sh -c /);
      expect(fake!.execs()).toHaveLength(3);
      // The first exec and the reader: always asks twice; cached once; never not at all.
      expect(fake!.attempts()).toEqual(asks === 'never' ? [] : asks === 'cached' ? [PASSWORD] : [PASSWORD, PASSWORD]);
      expect(fake!.execs().join('\n')).not.toContain(PASSWORD);
    });
  }

  it('a password sudo refuses at the reader is tried once, never again, and the command did not run', async () => {
    const c = await open('always');
    await c.exec('true');
    writeFileSync(path.join(fake!.dir, 'password'), 'another password now');
    const err = await c.exec('touch ran-after-refusal').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toContain('sudo refused the become password');
    const again = await c.exec('true').catch((e: unknown) => e);
    expect((again as Error).message).toContain('sudo refused the become password');
    expect(fake!.attempts()).toEqual([PASSWORD, PASSWORD]);
  });

  it('sudo that stops asking without a timestamp (sudo -n refused at the reader): the command goes by exec and runs', async () => {
    const c = await open('cached');
    await c.exec('true');
    await c.exec('true');
    fake!.forgetTimestamp();
    // The reader still runs as root; a new connection's reader would ask again.
    expect(await c.exec('echo still')).toEqual({ stdout: 'still\n', stderr: '', code: 0 });
  });
});
