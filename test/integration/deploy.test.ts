/**
 * Releases of the app rolled out through HAProxy on real hosts (instance depl: lb-01, web-01,
 * web-02; only the roles the deploy needs: haproxy, nginx, app; an app that needs no database).
 * A client in the lab's client namespace sends a bounded loop of HTTPS requests through the load
 * balancer while releases go out: not one may fail.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, inClient, labDown, labUp } from '../../src/lab/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { writeInventory } from './faults-helpers.ts';

const NAME = 'depl';
const SUBNET = '10.86.0';
const LB = `${SUBNET}.10`;
const DOMAIN = 'www.foobar.com';
let dir: string;
let inv: string;
let play: string;
let ca: string;

const APP = `'use strict';
const fs = require('fs');
const http = require('http');
const os = require('os');
const version = fs.readFileSync(__dirname + '/VERSION', 'utf8').trim();
const broken = fs.existsSync(__dirname + '/BROKEN');
const server = http.createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(broken ? 503 : 200); return res.end(broken ? 'broken\\n' : 'ok\\n'); }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ version, host: os.hostname() }));
});
server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1');
process.on('SIGTERM', () => { server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 3000).unref(); });
`;

/** A release directory: the app, its version, optionally a health check that always fails. */
function release(version: string, opts: { broken?: boolean } = {}): string {
  const d = path.join(dir, `release-${version}`);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'server.js'), APP);
  writeFileSync(path.join(d, 'VERSION'), `${version}\n`);
  if (opts.broken) writeFileSync(path.join(d, 'BROKEN'), 'yes\n');
  return d;
}

/**
 * The client: sequential HTTPS requests to www.foobar.com on the load balancer (its certificate
 * pinned as the CA), until the stop file appears, at most 20000 requests or 240 s. Prints every
 * answer as [startMs, latencyMs, status, version, host].
 */
const CLIENT = `'use strict';
const https = require('https');
const fs = require('fs');
const [lb, caFile, stopFile] = process.argv.slice(2);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
const ca = fs.readFileSync(caFile);
const out = [];
const t0 = Date.now();
function one() {
  return new Promise((resolve) => {
    const start = Date.now();
    const req = https.get({ host: lb, servername: '${DOMAIN}', headers: { host: '${DOMAIN}' }, path: '/', ca, agent, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let v = {};
        try { v = JSON.parse(body); } catch {}
        out.push([start - t0, Date.now() - start, res.statusCode, v.version || null, v.host || null]);
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { out.push([start - t0, Date.now() - start, 0, String(e.code || e.message), null]); resolve(); });
  });
}
(async () => {
  while (out.length < 20000 && Date.now() - t0 < 240000 && !fs.existsSync(stopFile)) await one();
  process.stdout.write(JSON.stringify(out));
})();
`;

type Answer = [number, number, number, string | null, string | null];

/** Runs `during` while the client loops; the client's answers (it runs 2 s before and after, for a baseline). */
async function withClient(during: () => Promise<CliResult>): Promise<{ answers: Answer[]; result: CliResult; startedAt: number }> {
  const stop = path.join(dir, `stop-${Math.random().toString(36).slice(2)}`);
  const client = inClient([process.execPath, path.join(dir, 'client.cjs'), LB, ca, stop], NAME, { timeoutMs: 300_000 });
  const clientT0 = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  const startedAt = Date.now() - clientT0;
  const result = await during();
  await new Promise((r) => setTimeout(r, 2000));
  writeFileSync(stop, '');
  const c = await client;
  expect(c.code, c.stderr).toBe(0);
  return { answers: JSON.parse(c.stdout) as Answer[], result, startedAt };
}

const failed = (a: Answer[]) => a.filter((x) => x[2] !== 200);

function sh(host: string, cmd: string) {
  return hostExec(host, ['sh', '-c', cmd], NAME, { timeoutMs: 60_000 });
}

async function currentOn(host: string): Promise<string> {
  const r = await sh(host, 'readlink /opt/app/current');
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().replace(/^releases\//, '');
}

function deploy(args: string[]): Promise<CliResult> {
  return provision(['deploy', '-i', inv, '--json', ...args], { timeoutMs: 300_000 });
}

const stepsOf = (r: CliResult, step: string) => r.events.filter((e) => e.kind === 'deploy' && e.step === step);

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-deploy-'));
  writeFileSync(path.join(dir, 'client.cjs'), CLIENT);
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: ['lb-01', 'web-01', 'web-02'], pebble: false });
  writeFileSync(path.join(dir, 'inv.secrets.yml'), 'mysql_app_password: not-used-by-this-app-0123\n', { mode: 0o600 });
  inv = writeInventory(dir, NAME, SUBNET, {
    file: 'inv.yml',
    hosts: `  lb-01: { address: ${LB}, groups: [loadbalancers] }\n  web-01: { address: ${SUBNET}.11, groups: [webservers] }\n  web-02: { address: ${SUBNET}.12, groups: [webservers] }\n`,
    tail: `vars:
  domain: ${DOMAIN}
  mysql_app_password: !secret mysql_app_password
  app_packages: [nodejs]
  app_source: ${release('v1')}
  app_env: { GREETING: "hello \\"quoted\\" $HOME" }
  app_build: "id -un > BUILT_BY"
  deploy_health_timeout: 8
  deploy_drain_timeout: 10
  haproxy_check_interval: 1
`,
  });
  play = path.join(dir, 'play.yml');
  writeFileSync(play, `- name: web\n  hosts: webservers\n  roles: [nginx, app]\n- name: lb\n  hosts: loadbalancers\n  roles: [haproxy]\n`);
  const r = await provision(['-i', inv, '-p', play, '--json'], { timeoutMs: 900_000 });
  expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(2);
  const pem = await sh('lb-01', `openssl x509 -in /etc/haproxy/certs/${DOMAIN}.pem`);
  expect(pem.code, pem.stderr).toBe(0);
  ca = path.join(dir, 'lb-ca.pem');
  writeFileSync(ca, pem.stdout);
}, 1_200_000);

afterAll(async () => {
  await labDown(NAME);
});

describe('deploy on real hosts', () => {
  it('the first converge installed v1 as a release: current, env file 0640 root:app, a second converge changes nothing', async () => {
    const v1 = await currentOn('web-01');
    expect(v1).toMatch(/^[0-9a-f]{20}$/);
    expect(await currentOn('web-02')).toBe(v1);
    const env = await sh('web-01', 'stat -c "%a %U %G" /opt/app/shared/env; grep GREETING /opt/app/shared/env; systemctl show -p Environment app.service; cat /proc/$(systemctl show -p MainPID --value app.service)/environ | tr "\\0" "\\n" | grep GREETING');
    expect(env.stdout).toContain('640 root app');
    // systemd reads the value as it was given ($ not expanded, quotes kept); it is not in the unit.
    expect(env.stdout).toContain('GREETING=hello "quoted" $HOME');
    expect(env.stdout).toMatch(/Environment=\s*$/m);
    // Built on the host as the app user, then given back to root; the build's HOME is gone.
    const built = await sh('web-01', 'cat /opt/app/current/BUILT_BY; stat -c "%U %a" /opt/app/current/BUILT_BY /opt/app/current/; ls -a /opt/app/current/');
    expect(built.stdout).toMatch(/^app\nroot 644\nroot 755\n/);
    expect(built.stdout).not.toContain('.build-home');
    const again = await provision(['-i', inv, '-p', play, '--json'], { timeoutMs: 600_000 });
    expect(again.code, again.stdout.slice(-2000)).toBe(0);
  }, 700_000);

  it('--check says which release goes where and changes nothing', async () => {
    const before = await currentOn('web-01');
    const r = await deploy(['--check', '--release', release('v2')]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toMatch(/web-01: deploy release-v2 [0-9a-f]{20} → [0-9a-f]{20} \(batch 1, release sent\)/);
    expect(r.stdout).toMatch(/web-02: deploy release-v2 .* \(batch 2, release sent\)/);
    expect(await currentOn('web-01')).toBe(before);
  });

  it('a rolling deploy: 0 failed requests, the version changes host by host; the same release again changes nothing', async () => {
    const v1 = await currentOn('web-01');
    const { answers, result, startedAt } = await withClient(() => deploy(['--release', release('v2')]));
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(failed(answers)).toEqual([]);
    const v2 = await currentOn('web-01');
    expect(v2).not.toBe(v1);
    expect(await currentOn('web-02')).toBe(v2);
    // Host by host: web-01 answered v2 while web-02 still answered v1.
    const first = (host: string, v: string) => answers.findIndex((a) => a[4] === host && a[3] === v);
    const web01v2 = first('web-01', 'v2');
    expect(web01v2).toBeGreaterThan(-1);
    expect(answers.slice(web01v2).some((a) => a[4] === 'web-02' && a[3] === 'v1')).toBe(true);
    expect(first('web-02', 'v2')).toBeGreaterThan(web01v2);
    expect(answers.at(-1)?.[3]).toBe('v2');
    // Figures (notes, not assertions): time per host, latency before and during the rollout.
    const perHost = stepsOf(result, 'ready').map((e) => e.ms);
    const before = answers.filter((a) => a[0] < startedAt).map((a) => a[1]);
    const during = answers.filter((a) => a[0] >= startedAt).map((a) => a[1]);
    console.log(
      `FIGURE deploy: per host (ship+drain+switch+health+ready) ${perHost.join(', ')} ms; requests ${answers.length}, ` +
        `latency before p50 ${percentile(before, 50)} ms p99 ${percentile(before, 99)} ms; during p50 ${percentile(during, 50)} ms p99 ${percentile(during, 99)} ms`,
    );

    const same = await deploy(['--release', release('v2')]);
    expect(same.code, same.stdout + same.stderr).toBe(0);
    expect(stepsOf(same, 'switched and healthy')).toEqual([]);
    expect(same.stdout).toContain('runs');
    expect(await currentOn('web-01')).toBe(v2);
  }, 400_000);

  it('a release whose health check fails: rolled back on the first host, 0 failed requests, exit 1, the second host untouched', async () => {
    const v2 = await currentOn('web-01');
    const log2 = (await sh('web-02', 'cat /opt/app/releases.log; ls /opt/app/releases')).stdout;
    const { answers, result } = await withClient(() => deploy(['--release', release('v3', { broken: true })]));
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stderr).toMatch(/web-01: release [0-9a-f]{20} failed its health check .*back on/);
    expect(stepsOf(result, 'rolled back and healthy').map((e) => e.host)).toEqual(['web-01']);
    expect(failed(answers)).toEqual([]);
    expect(answers.some((a) => a[3] === 'v3')).toBe(false);
    expect(await currentOn('web-01')).toBe(v2);
    expect(await currentOn('web-02')).toBe(v2);
    expect((await sh('web-02', 'cat /opt/app/releases.log; ls /opt/app/releases')).stdout).toBe(log2);
    const state = await sh('lb-01', `echo 'show stat' | python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); s.sendall(b'show stat\\n'); print(b''.join(iter(lambda: s.recv(65536), b'')).decode())" | cut -d, -f1,2,18 | grep '^web,web-'`);
    expect(state.stdout).toContain('web,web-01,UP');
  }, 400_000);

  it('a failing migration: nothing switched, exit 1', async () => {
    const v2 = await currentOn('web-01');
    const migInv = inv.replace(/\.yml$/, '-mig.yml');
    writeFileSync(migInv, readFileSync(inv, 'utf8') + '  app_migrate_command: "echo migrating as $(id -un); exit 7"\n');
    writeFileSync(migInv.replace(/\.yml$/, '.secrets.yml'), readFileSync(path.join(dir, 'inv.secrets.yml')), { mode: 0o600 });
    const r = await provision(['deploy', '-i', migInv, '--json', '--release', release('v4')], { timeoutMs: 300_000 });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/migration failed on web-01 \(exit 7\).*migrating as app.*nothing switched/s);
    expect(await currentOn('web-01')).toBe(v2);
    expect(await currentOn('web-02')).toBe(v2);
  }, 400_000);

  it('a binary file and a 20 MB archive arrive byte-identical', async () => {
    const src = release('v5');
    const bin = Buffer.from(Array.from({ length: 256 }, (_, i) => i).concat([0, 0, 13, 10, 26, 255]));
    writeFileSync(path.join(src, 'bytes.bin'), bin);
    writeFileSync(path.join(src, 'big.bin'), randomBytes(20 * 1024 * 1024));
    const archive = path.join(dir, 'v5.tar.gz');
    execFileSync('tar', ['-czf', archive, '-C', src, '.']);
    const r = await deploy(['--release', archive]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    const id = await currentOn('web-02');
    const want = (f: string) => createHash('sha256').update(readFileSync(path.join(src, f))).digest('hex');
    for (const host of ['web-01', 'web-02']) {
      const got = await sh(host, `cd /opt/app/releases/${id} && sha256sum bytes.bin big.bin && stat -c '%U %a' big.bin`);
      expect(got.stdout).toContain(`${want('bytes.bin')}  bytes.bin`);
      expect(got.stdout).toContain(`${want('big.bin')}  big.bin`);
      expect(got.stdout).toMatch(/root 6[04]4/);
    }
  }, 400_000);

  it('releases lists what runs where; rollback goes back one release, rolling', async () => {
    const now = await currentOn('web-01');
    const list = await provision(['releases', '-i', inv, '--json']);
    expect(list.code, list.stderr).toBe(0);
    const parsed = JSON.parse(list.stdout.trim().split('\n').at(-1)!) as Record<string, { current: string; previous: string }>;
    expect(parsed['web-01']!.current).toBe(now);
    const { answers, result } = await withClient(() => provision(['rollback', '-i', inv, '--json'], { timeoutMs: 300_000 }));
    expect(result.code, result.stdout + result.stderr).toBe(2);
    expect(failed(answers)).toEqual([]);
    expect(await currentOn('web-01')).toBe(parsed['web-01']!.previous);
    expect(answers.at(-1)?.[3]).toBe('v2');
  }, 400_000);
});
