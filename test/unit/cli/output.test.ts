/**
 * How the CLI says an error (one line, at most one hint, no stack trace) and what it does when an
 * output stream fails (silent from then on; EPIPE is not even mentioned).
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { errorLines, guardOutputStreams, printErr, printOut } from '../../../src/cli/output.js';
import { clearRegisteredSecrets, Secret, SECRET_MASK } from '../../../src/util/secrets.js';
import { ConnectionError, InputError } from '../../../src/util/errors.js';

afterEach(() => {
  delete process.env.PROVISION_DEBUG;
});

describe('errorLines', () => {
  it('our own error: its message and its hint', () => {
    expect(errorLines(new InputError('inventory x.yml:3:5: hosts.web1.port: expected a number', 'see the README'))).toEqual([
      'provision: error: inventory x.yml:3:5: hosts.web1.port: expected a number',
      'provision: hint: see the README',
    ]);
    expect(errorLines(new ConnectionError('web1: connection refused', 'socket'))).toEqual(['provision: error: web1: connection refused']);
  });

  it('anything else is called a bug, in one line and a hint, without its stack', () => {
    const lines = errorLines(new TypeError("Cannot read properties of undefined (reading 'x')"));
    expect(lines).toEqual([
      "provision: error: internal error: Cannot read properties of undefined (reading 'x')",
      'provision: hint: this is a bug in provision; PROVISION_DEBUG=1 prints where it happened',
    ]);
    expect(errorLines('a thrown string')[0]).toBe('provision: error: internal error: a thrown string');
  });

  it('PROVISION_DEBUG=1 adds the stack of an internal error', () => {
    process.env.PROVISION_DEBUG = '1';
    const lines = errorLines(new Error('boom'));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/^Error: boom\n\s+at /);
  });
});

/** A stream that records what is written to it and can fail like a closed pipe. */
class FakeStream extends EventEmitter {
  readonly written: string[] = [];
  write(s: string): boolean {
    this.written.push(s);
    return true;
  }
  fail(code: string): void {
    this.emit('error', Object.assign(new Error(`write ${code}`), { code }));
  }
}

describe('guardOutputStreams', () => {
  function guarded() {
    const stdout = new FakeStream();
    const stderr = new FakeStream();
    guardOutputStreams({ stdout, stderr } as unknown as { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream });
    return { stdout, stderr };
  }

  it('EPIPE on stdout: handled (an unhandled error event would throw), nothing said', () => {
    const { stdout, stderr } = guarded();
    expect(() => stdout.fail('EPIPE')).not.toThrow();
    expect(() => stdout.fail('ERR_STREAM_DESTROYED')).not.toThrow();
    expect(stderr.written).toEqual([]);
  });

  it('another write error on stdout: said once on stderr, then silence', () => {
    const { stdout, stderr } = guarded();
    stdout.fail('EIO');
    stdout.fail('EIO');
    expect(stderr.written).toEqual(['provision: warning: stdout: EIO; no more output there, the run goes on\n']);
  });

  it('both gone: nothing is written anywhere, nothing throws', () => {
    const { stdout, stderr } = guarded();
    stdout.fail('EPIPE');
    expect(() => stderr.fail('EIO')).not.toThrow();
    expect(stdout.written).toEqual([]);
    expect(stderr.written).toEqual([]);
  });
});

describe('printOut / printErr: what the CLI prints itself is masked', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    clearRegisteredSecrets();
  });
  it.each([
    ['stdout', printOut, process.stdout],
    ['stderr', printErr, process.stderr],
  ] as const)('%s: a secret in the text, plain and JSON-escaped, is printed masked', (_name, print, stream) => {
    new Secret('mysql_app_password', 'Pa55"w0rd-2026');
    const written: string[] = [];
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    print(`password: Pa55"w0rd-2026 json: ${JSON.stringify('Pa55"w0rd-2026')}`);
    expect(written.join('')).toBe(`password: ${SECRET_MASK} json: "${SECRET_MASK}"\n`);
  });
});
