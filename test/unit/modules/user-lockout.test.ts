/**
 * Replacing authorized_keys of the user the run logs in as (issue 12, item 10): refused before
 * anything is applied when no key the run logs in with would remain, naming the key's fingerprint.
 * The run's keys come from the inventory's identity_file (its public half, or FILE.pub when the
 * private key is encrypted) and from its ssh-agent (every key it holds: ssh2 does not say which
 * one the server accepted). The agent here is an in-process one speaking the agent protocol.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../../src/facts/index.js';
import { userModule, type ModuleContext } from '../../../src/modules/index.js';
import { authorizedKeyBlobs } from '../../../src/modules/lib/connection-keys.js';
import { ed25519KeyPair } from '../../../src/util/ssh-keys.js';
import { factsFrom, fileProbeResults, moduleContext, predictedFrom, testHost } from './fixtures.js';

const { utils, AgentProtocol } = ssh2;
const dir = mkdtempSync(path.join(tmpdir(), 'provision-lockout-'));

function keyPair(comment: string, passphrase?: string): { privateFile: string; publicLine: string; fingerprint: string } {
  const pair = ed25519KeyPair({ comment, ...(passphrase ? { passphrase, cipher: 'aes256-ctr' } : {}) });
  const privateFile = path.join(dir, comment);
  writeFileSync(privateFile, pair.private, { mode: 0o600 });
  writeFileSync(`${privateFile}.pub`, pair.public);
  const blob = Buffer.from(pair.public.split(' ')[1]!, 'base64');
  return { privateFile, publicLine: pair.public.trim(), fingerprint: 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '') };
}

const run = keyPair('run-key');
const other = keyPair('other-key');
const third = keyPair('third-key');

const ROOT_USER = 'root:x:0:0:root:/root:/bin/bash\n@@primary root\n@@groups root\n@@status root P 11/25/2026 0 99999 7 -1\n';

function context(keysOnHost: string, connection: { identityFile?: string; agent?: string; user?: string } = { identityFile: run.privateFile }): ModuleContext {
  const host = testHost();
  host.connection = { ...host.connection, user: connection.user ?? 'root', identityFile: connection.identityFile, agent: connection.agent };
  const results = new Map<string, ProbeResult>([['user:root', { stdout: ROOT_USER, code: 0 }]]);
  for (const [k, v] of fileProbeResults('/root/.ssh', { type: 'directory', mode: '700' })) results.set(k, v);
  for (const [k, v] of fileProbeResults('/root/.ssh/authorized_keys', { type: 'file', content: keysOnHost, mode: '600' })) results.set(k, v);
  return moduleContext({
    host,
    facts: factsFrom({}),
    check: false,
    predicted: predictedFrom(undefined),
    results,
    run: async () => {
      throw new Error('plan() must not run commands');
    },
  });
}

const plan = (keys: string[], ctx: ModuleContext, extra: Record<string, unknown> = {}) =>
  userModule.plan(userModule.schema.parse({ name: 'root', authorized_keys: keys, ...extra }), ctx);

describe('authorized_keys of the user the run logs in as', () => {
  it('dropping the identity file key is refused, naming its fingerprint, before anything is applied', async () => {
    const ctx = context(`${run.publicLine}\n${other.publicLine}\n`);
    await expect(plan([other.publicLine], ctx)).rejects.toThrow(`leaves out the key this run logs in with, ${run.fingerprint} (identity file ${run.privateFile})`);
  });

  it('keeping it is fine', async () => {
    const p = await plan([run.publicLine], context(`${run.publicLine}\n${other.publicLine}\n`));
    expect(p.changes.map((c) => c.action)).toEqual(['update content']);
  });

  it('allow_removing_connection_key: true lets it through', async () => {
    const p = await plan([other.publicLine], context(`${run.publicLine}\n`), { allow_removing_connection_key: true });
    expect(p.changes).toHaveLength(1);
  });

  it('a file that does not grant the run key today is not how the run gets in: no refusal', async () => {
    const p = await plan([third.publicLine], context(`${other.publicLine}\n`));
    expect(p.changes).toHaveLength(1);
  });

  it('another user than the one the run logs in as is not checked', async () => {
    const p = await plan([other.publicLine], context(`${run.publicLine}\n`, { identityFile: run.privateFile, user: 'deploy' }));
    expect(p.changes).toHaveLength(1);
  });

  it('the key is found behind options and with another comment', async () => {
    const [, blob] = run.publicLine.split(' ');
    const ctx = context(`from="10.0.0.1,10.0.0.2",command="echo \\"hi there\\"",no-pty ssh-ed25519 ${blob} renamed\n`);
    await expect(plan([other.publicLine], ctx)).rejects.toThrow(run.fingerprint);
    expect(authorizedKeyBlobs(`# comment\n\nrestrict ssh-ed25519 ${blob}\n`)).toEqual([Buffer.from(blob!, 'base64')]);
  });

  it('an encrypted identity file is compared through its .pub', async () => {
    const locked = keyPair('locked-key', 'secret passphrase');
    await expect(plan([other.publicLine], context(`${locked.publicLine}\n`, { identityFile: locked.privateFile }))).rejects.toThrow(locked.fingerprint);
  });

  describe('with an ssh-agent', () => {
    const socket = path.join(dir, 'agent.sock');
    const held = [other, third].map((k) => utils.parseKey(k.publicLine) as ssh2.ParsedKey);
    const server = net.createServer((conn) => {
      const protocol = new AgentProtocol(false);
      protocol.on('identities', (req) => protocol.getIdentitiesReply(req, held));
      conn.pipe(protocol).pipe(conn);
    });
    const listening = new Promise<void>((resolve) => server.listen(socket, resolve));
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('dropping every key the agent holds is refused, naming those the file grants', async () => {
      await listening;
      const ctx = context(`${other.publicLine}\n${third.publicLine}\n`, { agent: socket });
      await expect(plan([run.publicLine], ctx)).rejects.toThrow(`${other.fingerprint} (ssh-agent), ${third.fingerprint} (ssh-agent)`);
    });

    it('keeping any one of them is fine (the next run offers them all)', async () => {
      await listening;
      const p = await plan([third.publicLine], context(`${other.publicLine}\n${third.publicLine}\n`, { agent: socket }));
      expect(p.changes).toHaveLength(1);
    });
  });
});
