/**
 * The become password through a real SSH channel (an in-process ssh2 server running the local sh)
 * and a fake sudo that asks like the real one (see fake-host.ts). What the command receives on its
 * stdin must be exactly what the caller gave, whether sudo asks or not; the password goes to sudo
 * only when sudo asks with our prompt, and a wrong one is tried once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SshConnection } from '../../../src/transport/index.ts';
import { ConnectionError } from '../../../src/util/errors.ts';
import { mask, SECRET_MASK } from '../../../src/util/secrets.ts';
import { fakeHost, type FakeHost, type SudoAsks } from './fake-host.ts';

const PASSWORD = 'Tr0ub4dor&3;echo LEAKED';
const CONTENT = 'first line of the file\nsecond line\n';

let fake: FakeHost | undefined;
let conn: SshConnection | undefined;

async function open(asks: SudoAsks, password = PASSWORD): Promise<SshConnection> {
  fake = await fakeHost({ asks, password: PASSWORD });
  process.env[fake.host.connection.becomePasswordEnv!] = password;
  // By exec, a channel per command: what this file counts (sudo's calls and prompts per command).
  // The long-lived reader's own rules are persistent-channel.test.ts's ("persistent channel under sudo").
  conn = await SshConnection.connect(fake.host, undefined, 'exec');
  return conn;
}

afterEach(async () => {
  conn?.close();
  conn = undefined;
  await fake?.close();
  fake = undefined;
});

describe('become with a password: it answers sudo\'s prompt only', () => {
  for (const asks of ['never', 'always', 'cached'] as const) {
    it(`sudo that asks ${asks}: the command reads exactly its stdin, runs as sudo's command, and the output carries no prompt or marker`, async () => {
      const c = await open(asks);
      for (let i = 0; i < 3; i++) {
        const r = await c.exec('cat; echo "to stderr" >&2', { stdin: CONTENT });
        expect(r).toEqual({ stdout: CONTENT, stderr: 'to stderr\n', code: 0 });
      }
      // A probe batch reads its script from stdin: a password line there would run as a command.
      const batch = await c.exec('sh -s', { stdin: 'echo one\necho two\n' });
      expect(batch.stdout).toBe('one\ntwo\n');
      expect(fake!.attempts()).toEqual(asks === 'never' ? [] : asks === 'cached' ? [PASSWORD] : Array(4).fill(PASSWORD));
    });
  }

  it('the password is registered with the masker as soon as it is read', async () => {
    await open('never');
    expect(mask(`x ${PASSWORD} y`)).toBe(`x ${SECRET_MASK} y`);
  });

  it('after a command sudo let through without asking, the next goes with sudo -n (no wait); when sudo asks again, it is retried with the prompt', async () => {
    const c = await open('cached');
    await c.exec('true');
    await c.exec('true');
    await c.exec('true');
    expect(fake!.calls()).toEqual(['-S', '-S', '-n']);
    // The timestamp is gone (expired, or removed by a task): -n is refused, the command did not run; retried.
    fake!.forgetTimestamp();
    const r = await c.exec('cat', { stdin: CONTENT });
    expect(r).toEqual({ stdout: CONTENT, stderr: '', code: 0 });
    expect(fake!.calls()).toEqual(['-S', '-S', '-n', '-n', '-S']);
    expect(fake!.attempts()).toEqual([PASSWORD, PASSWORD]);
  });

  it('a wrong password: one clear error, sudo was given it once and nothing else from stdin, and it is not tried again', async () => {
    const c = await open('always', 'not-the-password');
    const err = await c.exec('cat', { stdin: 'SECRET FILE CONTENT\n' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as ConnectionError).level).toBe('auth');
    expect((err as Error).message).toMatch(/sudo refused the become password \(from \$PROVISION_TEST_SUDO_\d+\) for alice/);
    expect(fake!.attempts()).toEqual(['not-the-password']);
    const again = await c.exec('true').catch((e: unknown) => e);
    expect(again).toBe(err);
    expect(fake!.calls()).toHaveLength(1);
  });

  it('sudo that asks with a prompt of its own gets no answer: one clear error after three connect timeouts, not a hang', async () => {
    fake = await fakeHost({ asks: 'always', password: PASSWORD });
    fake.useOwnPrompt();
    fake.host.connection.connectTimeoutMs = 1000;
    conn = await SshConnection.connect(fake.host);
    const err = await conn.exec('cat', { stdin: CONTENT }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toBe("fake: sudo neither asked for the password with provision's prompt nor ran the command; it printed: Enter your PIN:");
    expect(fake.attempts()).toEqual([]);
  });

  it('without become the command runs as the login user, stdin as given', async () => {
    const c = await open('always');
    expect(await c.exec('cat', { stdin: CONTENT, become: false })).toEqual({ stdout: CONTENT, stderr: '', code: 0 });
    expect(fake!.calls()).toEqual([]);
  });

  it('exit codes and output pass through the bound and sudo as they are', async () => {
    const c = await open('always');
    expect(await c.exec('printf out; printf err >&2; exit 7')).toEqual({ stdout: 'out', stderr: 'err', code: 7 });
    // A command that exits 124 by itself (the code of timeout) is not mistaken for a timeout.
    expect(await c.exec('exit 124')).toMatchObject({ code: 124 });
  });
});
