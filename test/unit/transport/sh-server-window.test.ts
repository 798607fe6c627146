/**
 * The in-process SSH server (test/unit/helpers/sh-server.ts) under a consumer slower than the
 * command: the flaky "N commands after the first cost one more channel" (persistent-channel.test.ts)
 * hung under load in its 3 MB stdout + 500 KB stderr case. ssh2's server side keeps one pending write
 * per stream when the window is full and resumes only ONE of them when it opens (server.js,
 * CHANNEL_WINDOW_ADJUST: stdout's, else stderr's): stderr's pending bytes were dropped when the channel
 * ended (exec: a short stderr; the reader: its stderr end line never came, a hang). A loaded
 * controller reading late made both wait; here a paused client makes them wait every time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import ssh2 from 'ssh2';
import { shServer, type ShServer } from '../helpers/sh-server.ts';
import { bothStreamsPastTheWindow } from '../helpers/window-stall.ts';

let server: ShServer | undefined;
let client: ssh2.Client | undefined;

afterEach(async () => {
  client?.end();
  await server?.close();
  server = client = undefined;
});

describe('in-process SSH server: stdout and stderr both waiting for the window', () => {
  it('a command writing both streams to a client that reads late ends with all its bytes', async () => {
    server = await shServer();
    const c = (client = new ssh2.Client());
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve()).once('error', reject);
      c.connect({ host: '127.0.0.1', port: server!.port, username: 'u', password: 'p' });
    });
    const r = await bothStreamsPastTheWindow(c);
    expect({ ended: r.ended, out: r.out, err: r.err }).toEqual({ ended: true, out: r.expected, err: r.expected });
  });
});
