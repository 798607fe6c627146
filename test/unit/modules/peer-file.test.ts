/** peer_file: a file copied from another inventory host through the control machine. */
import { describe, expect, it } from 'vitest';
import { emptyPredictedState, type ModuleContext, type Probe, type ProbeResult } from '../../../src/modules/contract.ts';
import { peerFileModule, type PeerFileParams } from '../../../src/modules/peer-file.ts';
import type { Connection } from '../../../src/transport/index.ts';
import { debianFacts, testHost } from './fixtures.ts';

const PEM = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n';
const DEST = '/etc/haproxy/certs/www.foobar.com.pem';
const P: PeerFileParams = { from_host: 'lb-01', sources: ['/etc/letsencrypt/live/www.foobar.com/fullchain.pem', '/etc/letsencrypt/live/www.foobar.com/privkey.pem'], dest: DEST };

/** The peer answers from `files` (its content as of each call); `calls` counts its commands. */
function ctxFor(peerAnswers: () => { code: number; stdout: string }, dest: string | undefined, check = false) {
  const calls: string[] = [];
  const answers: Record<string, ProbeResult> = dest === undefined ? {} : { [`file:c:${DEST}`]: { code: 0, stdout: `file 600 root root ${dest.length} -\n${Buffer.from(dest).toString('base64')}` } };
  const ctx: ModuleContext = {
    host: testHost(),
    facts: debianFacts(),
    check,
    predicted: emptyPredictedState(),
    read: <T,>(p: Probe<T>) => p.parse(answers[p.key]),
    run: async () => ({ code: 1, stdout: '' }),
    peer: async (name) => {
      expect(name).toBe('lb-01');
      return { exec: async (cmd: string) => (calls.push(cmd), { ...peerAnswers(), stderr: '' }) } as unknown as Connection;
    },
  };
  return { ctx, calls };
}

const plan = (params: PeerFileParams, ctx: ModuleContext) => peerFileModule.plan(peerFileModule.schema.parse(params), ctx);

describe('peer_file', () => {
  it('copies the peer\'s files, concatenated, on stdin into a 0600 file; the change is never shown', async () => {
    const { ctx, calls } = ctxFor(() => ({ code: 0, stdout: PEM }), undefined);
    const p = await plan(P, ctx);
    expect(calls[0]).toBe("test -s /etc/letsencrypt/live/www.foobar.com/fullchain.pem && test -s /etc/letsencrypt/live/www.foobar.com/privkey.pem && cat -- /etc/letsencrypt/live/www.foobar.com/fullchain.pem /etc/letsencrypt/live/www.foobar.com/privkey.pem");
    expect(p.changes).toEqual([{ kind: 'file', target: DEST, action: 'create from lb-01', sensitive: true }]);
    const c = p.commands[0]!;
    expect(c.kind === 'shell' && c.stdin).toBe(PEM);
    expect(c.kind === 'shell' && c.cmd).not.toContain('PRIVATE KEY');
    expect(c.kind === 'shell' && c.cmd).toContain('chmod 600');
  });

  it('changes nothing when this host already has the same bytes', async () => {
    const { ctx } = ctxFor(() => ({ code: 0, stdout: PEM }), PEM);
    expect((await plan(P, ctx)).changes).toEqual([]);
  });

  it('waits (bounded) for the peer to make the file in the same run, then copies it', async () => {
    let n = 0;
    const { ctx, calls } = ctxFor(() => (++n < 2 ? { code: 1, stdout: '' } : { code: 0, stdout: PEM }), undefined);
    const p = await plan({ ...P, wait_seconds: 10 }, ctx);
    expect(calls).toHaveLength(2);
    expect(p.changes).toHaveLength(1);
  });

  it('fails naming the files and the peer when they never come; check mode only predicts', async () => {
    const { ctx } = ctxFor(() => ({ code: 1, stdout: '' }), undefined);
    await expect(plan(P, ctx)).rejects.toThrow(/fullchain\.pem \+ .*privkey\.pem not on lb-01: .* cannot be copied from it/);
    const check = ctxFor(() => ({ code: 1, stdout: '' }), undefined, true);
    const p = await plan({ ...P, wait_seconds: 600 }, check.ctx);
    expect(check.calls).toHaveLength(1);
    expect(p.commands).toEqual([]);
    expect(p.changes[0]!.action).toMatch(/^copy from lb-01 once it has/);
  });

  it('writes a prefix before the copied content (a public key made an authorized_keys line) and compares with it', async () => {
    const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB push\n';
    const prefix = 'restrict,from="10.0.0.10",command="/usr/local/lib/provision/accept-certificate" ';
    const params = { ...P, sources: ['/etc/provision/certificate-push/id_ed25519.pub'], prefix };
    const fresh = await plan(params, ctxFor(() => ({ code: 0, stdout: key }), undefined).ctx);
    const c = fresh.commands[0]!;
    expect(c.kind === 'shell' && c.stdin).toBe(prefix + key);
    // The line without its options (written by hand, or before the prefix) is replaced.
    expect((await plan(params, ctxFor(() => ({ code: 0, stdout: key }), key).ctx)).changes).toHaveLength(1);
    expect((await plan(params, ctxFor(() => ({ code: 0, stdout: key }), prefix + key).ctx)).changes).toEqual([]);
  });
});
