import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isUp, parseShowStat, runtimeCommand, setStateLine } from '../../../src/deploy/haproxy-runtime.ts';
import { appLayout, parseState, previousRelease, readStateScript, releasesToPrune, type HostReleases } from '../../../src/deploy/host-state.ts';
import { describePlan, NoPreviousRelease, planDeploy, planRollback } from '../../../src/deploy/plan.ts';
import { localRelease, packRelease, RELEASE_ID } from '../../../src/deploy/release.ts';
import { asAppUser, healthUrl, installScript, switchScript } from '../../../src/deploy/scripts.ts';

function tree(files: Record<string, string | Buffer>): string {
  const d = mkdtempSync(path.join(tmpdir(), 'provision-release-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(d, rel)), { recursive: true });
    writeFileSync(path.join(d, rel), content);
  }
  return d;
}

describe('release id (content hash)', () => {
  it('is the same for the same content whatever the path or the times, and differs for any change', () => {
    const a = tree({ 'server.js': 'x', 'lib/a.js': 'y' });
    const b = tree({ 'lib/a.js': 'y', 'server.js': 'x' });
    const ida = localRelease(a).id;
    expect(ida).toMatch(RELEASE_ID);
    expect(localRelease(b).id).toBe(ida);
    expect(localRelease(tree({ 'server.js': 'x', 'lib/a.js': 'z' })).id).not.toBe(ida);
    expect(localRelease(tree({ 'server.js': 'x', 'lib/b.js': 'y' })).id).not.toBe(ida);
    // The executable bit is part of the code; a symlink's target too.
    chmodSync(path.join(b, 'server.js'), 0o755);
    expect(localRelease(b).id).not.toBe(ida);
    symlinkSync('server.js', path.join(a, 'link'));
    expect(localRelease(a).id).not.toBe(ida);
  });

  it('an archive is identified by its bytes; anything else is bad input naming the path', () => {
    const d = tree({ 'server.js': 'x' });
    const archive = path.join(d, '..', `${path.basename(d)}.tar.gz`);
    execFileSync('tar', ['-czf', archive, '-C', d, '.']);
    expect(localRelease(archive)).toMatchObject({ kind: 'archive', id: expect.stringMatching(RELEASE_ID) });
    expect(() => localRelease(path.join(d, 'server.js'))).toThrow(/server\.js: neither a directory nor an archive/);
    expect(() => localRelease('/nonexistent/rel')).toThrow(/\/nonexistent\/rel: no such file or directory/);
  });

  it('a directory packs as a gzip tar with its bytes intact and root ownership', () => {
    const bin = Buffer.from([0, 1, 2, 255, 13, 10, 0, 26]);
    const d = tree({ 'bytes.bin': bin, 'server.js': 'ok' });
    const packed = packRelease(localRelease(d));
    expect(packed.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    const out = mkdtempSync(path.join(tmpdir(), 'provision-unpack-'));
    execFileSync('tar', ['-xzf', '-', '-C', out], { input: packed });
    expect(readFileSync(path.join(out, 'bytes.bin'))).toEqual(bin);
    const listing = execFileSync('tar', ['-tvzf', '-'], { input: packed, encoding: 'utf8' });
    expect(listing).toMatch(/0\/0 .* \.\/bytes\.bin/);
    // A plain .tar is compressed for the trip.
    const tarFile = `${d}.tar`;
    execFileSync('tar', ['-cf', tarFile, '-C', d, '.']);
    expect(gunzipSync(packRelease(localRelease(tarFile)))).toEqual(readFileSync(tarFile));
  });
});

const state = (s: Partial<HostReleases>): HostReleases => ({ installed: [], history: [], unit: true, ...s });
const A = 'a'.repeat(20);
const B = 'b'.repeat(20);
const C = 'c'.repeat(20);

describe('what a host records', () => {
  it('parses current, releases, history and the unit from the state script output', () => {
    const s = parseState(`current ${B}\nrelease ${B} 200\nrelease ${A} 100\nswitched 100 ${A}\nswitched 200 ${B}\nunit\n`);
    expect(s).toEqual({ current: B, installed: [{ id: A, installedAt: 100 }, { id: B, installedAt: 200 }], history: [A, B], unit: true });
    expect(parseState('current \n')).toEqual({ installed: [], history: [], unit: false });
    expect(readStateScript(appLayout('/opt/app'), '/etc/systemd/system/app.service')).toContain('readlink /opt/app/current');
  });

  it('previous release: the one switched to before (a rollback of a rollback is an undo), else the one installed before', () => {
    const installed = [A, B, C].map((id, i) => ({ id, installedAt: i }));
    expect(previousRelease(state({ current: C, installed, history: [A, B, C] }))).toBe(B);
    expect(previousRelease(state({ current: B, installed, history: [A, B, C, B] }))).toBe(C);
    expect(previousRelease(state({ current: C, installed: installed.filter((r) => r.id !== B), history: [A, B, C] }))).toBe(A);
    expect(previousRelease(state({ current: B, installed, history: [] }))).toBe(A);
    expect(previousRelease(state({ current: A, installed: [installed[0]!], history: [A] }))).toBeUndefined();
  });

  it('pruning keeps the newest, never current nor the rollback target', () => {
    const ids = Array.from({ length: 7 }, (_, i) => String(i).repeat(20));
    const installed = ids.map((id, i) => ({ id, installedAt: i }));
    // Current is an old release (a rollback went there); the newest one stays as its previous.
    const s = state({ current: ids[1], installed, history: [...ids, ids[1]!] });
    const gone = releasesToPrune(s, 3);
    expect(gone).not.toContain(ids[1]);
    expect(gone).not.toContain(ids[6]);
    expect(installed.length - gone.length).toBe(3);
    expect(releasesToPrune(s, 2).sort()).toEqual(ids.filter((id) => id !== ids[1] && id !== ids[6]).sort());
  });
});

describe('plan of a deploy', () => {
  const hosts = [
    { host: 'web-01', state: state({ current: A, installed: [{ id: A, installedAt: 1 }] }) },
    { host: 'web-02', state: state({ current: A, installed: [{ id: A, installedAt: 1 }, { id: B, installedAt: 2 }] }) },
    { host: 'web-03', state: state({ current: B, installed: [{ id: B, installedAt: 2 }] }) },
    { host: 'web-04', state: state({ current: A, installed: [{ id: A, installedAt: 1 }] }) },
  ];

  it('batches only the hosts that change, in order; ships only where the release is missing', () => {
    const p = planDeploy(hosts, B, 2);
    expect(p.batches).toEqual([['web-01', 'web-02'], ['web-04']]);
    expect(p.steps.map((s) => [s.host, s.ship, s.change])).toEqual([
      ['web-01', true, true],
      ['web-02', false, true],
      ['web-03', false, false],
      ['web-04', true, true],
    ]);
    expect(describePlan(p)).toEqual([
      `web-01: deploy ${A} → ${B} (batch 1, release sent)`,
      `web-02: deploy ${A} → ${B} (batch 1, release already there)`,
      `web-03: runs ${B} already, unchanged`,
      `web-04: deploy ${A} → ${B} (batch 2, release sent)`,
    ]);
    expect(planDeploy(hosts.slice(2, 3), B, 1).batches).toEqual([]);
  });

  it('a rollback goes back one release on each host and refuses, naming them, hosts with nothing to go back to', () => {
    const two = [
      { host: 'web-01', state: state({ current: B, installed: [{ id: A, installedAt: 1 }, { id: B, installedAt: 2 }], history: [A, B] }) },
      { host: 'web-02', state: state({ current: B, installed: [{ id: A, installedAt: 1 }, { id: B, installedAt: 2 }], history: [A, B] }) },
    ];
    expect(planRollback(two, 1)).toMatchObject({ batches: [['web-01'], ['web-02']], steps: [{ to: A, ship: false }, { to: A, ship: false }] });
    expect(() => planRollback([...two, hosts[2]!], 1)).toThrow(NoPreviousRelease);
    expect(() => planRollback([...two, hosts[2]!], 1)).toThrow(/web-03/);
  });
});

describe("HAProxy's runtime API", () => {
  const SHOW_STAT = [
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck',
    'https,FRONTEND,,,3,5,4096,100,0,0,0,0,0,,,,,OPEN,,,',
    'web,web-01,0,0,2,4,,50,0,0,,0,,0,0,0,0,DRAIN,1,1,0',
    'web,web-02,0,0,0,3,,50,0,0,,0,,0,0,0,0,UP,1,1,0',
    'web,web-03,0,0,0,3,,50,0,0,,0,,0,0,0,0,UP 1/3,1,1,0',
    'web,BACKEND,0,0,2,5,,100,0,0,0,0,,0,0,0,0,UP,2,2,0',
    '',
  ].join('\n');

  it('show stat: sessions and status per backend/server, columns found by name', () => {
    const s = parseShowStat(SHOW_STAT);
    expect(s.get('web/web-01')).toEqual({ scur: 2, status: 'DRAIN' });
    expect(s.get('web/web-02')).toEqual({ scur: 0, status: 'UP' });
    expect([...s.keys()]).toEqual(['web/web-01', 'web/web-02', 'web/web-03']);
    expect(isUp(s.get('web/web-02'))).toBe(true);
    // Going down (a failed check) is not back yet.
    expect(isUp(s.get('web/web-03'))).toBe(false);
    expect(() => parseShowStat('Unknown command\n')).toThrow(/not the output of "show stat"/);
  });

  it('commands: one line to the socket, a server name that cannot inject another command', () => {
    expect(setStateLine('web-01', 'drain')).toBe('set server web/web-01 state drain');
    expect(() => setStateLine('web-01; disable frontend https', 'ready')).toThrow(/not a HAProxy server name/);
    const cmd = runtimeCommand('show stat');
    expect(cmd).toContain("UNIX-CONNECT:/run/haproxy/admin.sock");
    expect(cmd).toContain('python3 -c');
  });

  it('the runtime API talks to the socket and backend haproxy.cfg declares', () => {
    const cfg = readFileSync(path.join(import.meta.dirname, '../../../src/roles/haproxy/templates/haproxy.cfg.njk'), 'utf8');
    expect(cfg).toContain('stats socket /run/haproxy/admin.sock mode 660 level admin');
    expect(cfg).toMatch(/^backend web$/m);
    expect(cfg).toMatch(/server \{\{ b\.name \}\}/);
  });
});

describe('host scripts', () => {
  const l = appLayout('/opt/app');

  it('a release is unpacked beside its place, built as the app user, marked, then renamed in', () => {
    const s = installScript(l, A, { user: 'app', build: 'npm ci --omit=dev' });
    const at = (x: string) => s.indexOf(x);
    expect(at('tar -xf - -C "$t" --no-same-owner')).toBeGreaterThan(-1);
    expect(at('systemd-run')).toBeGreaterThan(at('tar -xf'));
    expect(s).toContain(' --uid=app ');
    expect(at('chown -R root:root')).toBeGreaterThan(at('systemd-run'));
    expect(at('.provision-release')).toBeLessThan(at('mv -T "$t" "$d/$id"'));
    expect(installScript(l, A, { user: 'app' })).not.toContain('systemd-run');
  });

  it('run by a real POSIX shell: a 0700 source is readable by the app once installed; again: nothing sent; a cut transfer leaves nothing', () => {
    const src = tree({ 'server.js': 'ok', 'secret-ish.json': '{}' });
    chmodSync(src, 0o700);
    chmodSync(path.join(src, 'secret-ish.json'), 0o600);
    const rel = localRelease(src);
    const packed = packRelease(rel);
    const root = mkdtempSync(path.join(tmpdir(), 'provision-install-'));
    const lay = appLayout(root);
    const install = (input: Buffer) => execFileSync('/bin/sh', ['-c', installScript(lay, rel.id, { user: 'app' })], { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    expect(install(packed).trim()).toBe('installed');
    const mode = (p: string) => (statSync(path.join(lay.releases, rel.id, p)).mode & 0o777).toString(8);
    expect([mode('.'), mode('server.js'), mode('secret-ish.json')]).toEqual(['755', '644', '644']);
    expect(readFileSync(path.join(lay.releases, rel.id, '.provision-release'), 'utf8')).toMatch(new RegExp(`^${rel.id} \\d+\\n$`));
    expect(install(packed).trim()).toBe('present');
    // Half a transfer: the script fails and leaves neither a release nor its incoming directory.
    const other = localRelease(tree({ 'server.js': 'other' }));
    const cut = packRelease(other).subarray(0, 20);
    expect(() => execFileSync('/bin/sh', ['-c', installScript(lay, other.id, { user: 'app' })], { input: cut, stdio: ['pipe', 'pipe', 'pipe'] })).toThrow();
    expect(readdirSync(lay.releases)).toEqual([rel.id]);
  });

  it('current is switched by renaming a new symlink over it, then the app restarts', () => {
    const s = switchScript(l, B);
    expect(s).toContain('ln -sfn "releases/$id" "$d/.current.new"');
    expect(s.indexOf('mv -T "$d/.current.new" "$d/current"')).toBeLessThan(s.indexOf('systemctl restart app.service'));
  });

  it('a command as the app user gets its environment from the env file (systemd reads it), never from argv', () => {
    const s = asAppUser({ user: 'app', cwd: '/opt/app/releases/x', cmd: 'npm run migrate', envFile: '/opt/app/shared/env' });
    expect(s).toContain(' --property=EnvironmentFile=/opt/app/shared/env ');
    expect(s).toContain("/bin/sh -c 'npm run migrate'");
  });

  it('the health check goes through Nginx on the private address (https when the load balancers re-encrypt)', () => {
    expect(healthUrl({ address: '10.0.0.11', port: 80, path: '/health', tls: false })).toBe('http://10.0.0.11:80/health');
    expect(healthUrl({ address: 'fd00::11', port: 8443, path: '/up', tls: true })).toBe('https://[fd00::11]:8443/up');
  });
});
