/**
 * `provision pki status | rotate STEP` in-process: the whole rotation on a real CA folder (real keys,
 * real openssl-free X509 checks), each step refused from the wrong phase, and the steps that need
 * the hosts refused (exit 3, nothing changed) when a host cannot be read, unless --force.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { bundleFiles, bundlesWithout, describeHostFiles, leafFiles } from '../../../src/cli/pki.js';
import { loadInventory } from '../../../src/inventory/index.js';
import { caBundle, ensureCa, finishRotation, issueLeaf, loadCa, promoteRotation, startRotation } from '../../../src/pki/index.ts';
import { captureOutput } from '../helpers/output.ts';

const out = captureOutput();
let dir: string;
let inv: string;
let unreachable: string;
let databases: string;
const pki = () => path.join(dir, 'site.pki');
const state = () => JSON.parse(readFileSync(path.join(pki(), 'state.json'), 'utf8')) as { current: string; next?: string; previous?: string };
const json = () => JSON.parse(out.stdout.join('').trim().split('\n').at(-1)!) as Record<string, unknown>;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-pki-cli-'));
  // No load balancer or web server: the rotation's host checks have nobody to read.
  inv = path.join(dir, 'site.yml');
  writeFileSync(inv, 'hosts:\n  mon-01: { address: 127.0.0.1, port: 1, groups: [monitoring] }\n');
  // The same CA folder seen through an inventory whose load balancer and web server cannot be reached.
  unreachable = path.join(dir, 'site.yaml');
  writeFileSync(
    unreachable,
    `hosts:
  lb-01: { address: 127.0.0.1, port: 1, connect_timeout: 2, groups: [loadbalancers] }
  web-01: { address: 127.0.0.1, port: 1, connect_timeout: 2, groups: [webservers] }
`,
  );
  // The same CA folder again, through an inventory whose only hosts are database hosts and an app server.
  databases = path.join(dir, 'site.ini');
  writeFileSync(
    databases,
    `[db_primary]
db-01 ansible_host=127.0.0.1 ansible_port=1
[db_replica]
db-02 ansible_host=127.0.0.1 ansible_port=1
[webservers]
app-01 ansible_host=127.0.0.1 ansible_port=1
[all:vars]
connect_timeout=2
`,
  );
  await ensureCa(pki(), { label: 'site' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('provision pki', () => {
  it('status: the phase and the CA', async () => {
    expect(await main(['pki', 'status', '-i', inv, '--json'])).toBe(0);
    const s = json() as { phase: string; cas: Array<{ role: string; daysLeft: number }> };
    expect(s.phase).toBe('stable');
    expect(s.cas.map((c) => c.role)).toEqual(['current']);
    expect(s.cas[0]!.daysLeft).toBeGreaterThan(3000);
  });

  it('a step from the wrong phase is refused (exit 1), nothing changed; an unknown step is bad input (exit 4)', async () => {
    const before = readFileSync(path.join(pki(), 'state.json'), 'utf8');
    expect(await main(['pki', 'rotate', 'promote', '-i', inv])).toBe(1);
    expect(out.stderr.join('')).toMatch(/cannot promote a rotation of the CA .*: it is stable/);
    expect(await main(['pki', 'rotate', 'sideways', '-i', inv])).toBe(4);
    expect(readFileSync(path.join(pki(), 'state.json'), 'utf8')).toBe(before);
  });

  it('start → promote → finish: a new CA trusted beside the old, then signing, then alone; the old one deleted', async () => {
    const old = state().current;
    expect(await main(['pki', 'rotate', 'start', '-i', inv, '--json'])).toBe(2);
    expect(json()).toMatchObject({ step: 'start', from: 'stable', to: 'staged' });
    const next = state().next!;
    expect(next).toBeDefined();
    expect(await main(['pki', 'status', '-i', inv, '--json'])).toBe(0);
    expect((json() as { cas: Array<{ id: string; role: string }> }).cas.map((c) => `${c.role} ${c.id}`)).toEqual([`current ${old}`, `next ${next}`]);

    // The load balancer cannot be read: promote refuses (it cannot know the new CA is trusted there).
    expect(await main(['pki', 'rotate', 'promote', '-i', unreachable])).toBe(3);
    expect(out.stderr.join('')).toMatch(/lb-01 could not be read/);
    expect(state()).toEqual({ version: 1, current: old, next });

    // The database hosts' and the app server's CA bundles are read too (replication and the app verify with them).
    expect(await main(['pki', 'rotate', 'promote', '-i', databases])).toBe(3);
    expect(out.stderr.join('')).toMatch(/db-01 could not be read.*db-02 could not be read.*app-01 could not be read/);
    expect(state()).toEqual({ version: 1, current: old, next });

    expect(await main(['pki', 'rotate', 'promote', '-i', inv])).toBe(2);
    expect(out.stdout.join('')).toContain('pki rotate promote: staged → promoted. Next: converge every host');
    expect(state()).toMatchObject({ current: next, previous: old });

    expect(await main(['pki', 'rotate', 'finish', '-i', unreachable])).toBe(3);
    expect(out.stderr.join('')).toMatch(/web-01 could not be read/);
    expect(state()).toMatchObject({ current: next, previous: old });

    // The database servers' certificates are read too (app-01's: its backend certificate, backend_tls by default).
    expect(await main(['pki', 'rotate', 'finish', '-i', databases])).toBe(3);
    const finishRefusal = out.stderr.join('').trim().split('\n').at(-1)!;
    expect(finishRefusal).toMatch(/^provision: pki rotate finish refused.*app-01 could not be read.*db-01 could not be read.*db-02 could not be read/);
    expect(state()).toMatchObject({ current: next, previous: old });

    expect(await main(['pki', 'rotate', 'finish', '-i', inv])).toBe(2);
    expect(state()).toEqual({ version: 1, current: next });
    expect(existsSync(path.join(pki(), 'ca', old))).toBe(false);
  }, 60_000);

  it('abort after start drops the new CA', async () => {
    const current = state().current;
    expect(await main(['pki', 'rotate', 'start', '-i', inv])).toBe(2);
    const next = state().next!;
    expect(await main(['pki', 'rotate', 'abort', '-i', inv])).toBe(2);
    expect(state()).toEqual({ version: 1, current });
    expect(existsSync(path.join(pki(), 'ca', next))).toBe(false);
  }, 60_000);

  it('finish is refused while a host still holds a certificate of the old CA (the check finish runs on what it read)', async () => {
    const other = path.join(dir, 'other.pki');
    await ensureCa(other, { label: 'other' });
    await startRotation(other, { label: 'other' });
    const oldLeaf = await issueLeaf(loadCa(other)!, { names: ['web-01', '10.9.0.11'] }); // staged: the old CA still signs
    const old = JSON.parse(readFileSync(path.join(other, 'state.json'), 'utf8')).current as string;
    await promoteRotation(other);
    const newLeaf = await issueLeaf(loadCa(other)!, { names: ['web-02', '10.9.0.12'] });
    await expect(finishRotation(other, { leaves: [{ host: 'web-01', certPem: oldLeaf.certPem }, { host: 'web-02', certPem: newLeaf.certPem }] })).rejects.toThrow(
      `cannot finish the rotation: web-01 still hold a certificate of the old CA ${old}`,
    );
    expect(existsSync(path.join(other, 'ca', old))).toBe(true);
    await finishRotation(other, { leaves: [{ host: 'web-02', certPem: newLeaf.certPem }] });
    expect(existsSync(path.join(other, 'ca', old))).toBe(false);
  }, 60_000);

  it('the files a rotation depends on: web and database certificates; load balancer, database and app CA bundles', () => {
    const split = path.join(dir, 'split.yml');
    writeFileSync(
      split,
      `hosts:
  lb-01: { address: 10.9.0.10, groups: [loadbalancers] }
  web-01: { address: 10.9.0.11, groups: [webservers] }
  db-01: { address: 10.9.0.21, groups: [db_primary] }
  db-02: { address: 10.9.0.22, groups: [db_replica] }
vars:
  backend_tls: true
`,
    );
    const files = (f: Array<{ host: { name: string }; path: string }>) => f.map((x) => `${x.host.name} ${x.path}`);
    const site = loadInventory(split);
    expect(files(leafFiles(site))).toEqual(['web-01 /etc/nginx/tls/backend.pem', 'db-01 /etc/mysql/tls/server.pem', 'db-02 /etc/mysql/tls/server.pem']);
    expect(files(bundleFiles(site))).toEqual(['lb-01 /etc/haproxy/backend-ca.pem', 'db-01 /etc/provision/tls/db-ca.pem', 'db-02 /etc/provision/tls/db-ca.pem', 'web-01 /etc/provision/tls/db-ca.pem']);
    // Without a primary the app gets no database CA bundle: nothing of it to read.
    expect(files(bundleFiles(loadInventory(inv)))).toEqual([]);
  });

  it('finish refused while a database server holds a certificate of the old CA; promote while a db-ca.pem lacks the new CA; status says which CA signed what', async () => {
    const db = path.join(dir, 'db.pki');
    await ensureCa(db, { label: 'db' });
    await startRotation(db, { label: 'db' });
    const staged = loadCa(db)!;
    const oldId = staged.signer.id;
    const next = staged.trusted.find((c) => c.role === 'next')!;
    const oldBundle = `${staged.signer.certPem}`;
    // db-01 converged after start (both CAs), db-02 not yet (the old CA only): promote would cut db-02's replication off.
    const bundles = [
      { host: 'db-01', path: '/etc/provision/tls/db-ca.pem', value: caBundle(staged) },
      { host: 'db-02', path: '/etc/provision/tls/db-ca.pem', value: oldBundle },
    ];
    expect(bundlesWithout(next, bundles)).toEqual(['db-02 (/etc/provision/tls/db-ca.pem)']);
    const oldLeaf = await issueLeaf(staged, { names: ['db-02', '10.9.0.22'] });
    await promoteRotation(db);
    const promoted = loadCa(db)!;
    const newLeaf = await issueLeaf(promoted, { names: ['db-01', '10.9.0.21'] });
    const leaves = [
      { host: 'db-01', path: '/etc/mysql/tls/server.pem', value: { exists: true, certPem: newLeaf.certPem } },
      { host: 'db-02', path: '/etc/mysql/tls/server.pem', value: { exists: true, certPem: oldLeaf.certPem } },
    ];
    const status = describeHostFiles(promoted, leaves, bundles, new Date());
    expect(status.map((f) => (f.kind === 'certificate' ? `${f.host} signed by ${f.signedBy}` : `${f.host} trusts ${f.trusts.join('+')}, missing ${f.missing.join('+') || '-'}`))).toEqual([
      `db-01 signed by ${next.id}`,
      `db-02 signed by ${oldId}`,
      `db-01 trusts ${next.id}+${oldId}, missing -`,
      `db-02 trusts ${oldId}, missing ${next.id}`,
    ]);
    await expect(finishRotation(db, { leaves: leaves.map((l) => ({ host: `${l.host} (${l.path})`, certPem: l.value.certPem })) })).rejects.toThrow(
      `cannot finish the rotation: db-02 (/etc/mysql/tls/server.pem) still hold a certificate of the old CA ${oldId}`,
    );
    expect(existsSync(path.join(db, 'ca', oldId))).toBe(true);
  }, 60_000);

  it('status --hosts: a host that cannot be read is said, exit 3', async () => {
    expect(await main(['pki', 'status', '--hosts', '-i', databases, '--json'])).toBe(3);
    const s = json() as { hosts: unknown[]; unreadable: Record<string, string> };
    expect(Object.keys(s.unreadable).sort()).toEqual(['app-01', 'db-01', 'db-02']);
    expect(await main(['pki', 'status', '-i', databases])).toBe(0);
  });
});
