/**
 * The benchmark's equivalence check between our site and the idiomatic Ansible playbook's
 * (bench/idiomatic.mjs): what counts as a difference, what Ansible may add, and that no secret value
 * reaches the report (it goes into bench/results.json, which is committed).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareStates, secretValuesOf, stateScript, type HostState } from '../../../bench/idiomatic.mjs';

const base = (): HostState => ({
  packages: ['nginx', 'ufw'],
  ufw: ['### tuple ### allow tcp 22 0.0.0.0/0 any 10.0.0.1 in', 'ENABLED=yes'],
  'file /etc/app/config.json': ['640 root:app', '{ "password": "s3cret-value-1" }'],
  'unit nginx': ['active', 'enabled'],
});

describe('compareStates', () => {
  it('finds two identical hosts equivalent', () => {
    const r = compareStates({ h: base() }, { h: base() });
    expect(r.equivalent).toBe(true);
    expect(r.hosts.h!.same).toBe(true);
  });

  it('lets Ansible add only its own packages', () => {
    const theirs = { ...base(), packages: ['nginx', 'python3-pymysql', 'ufw'] };
    expect(compareStates({ h: base() }, { h: theirs }).equivalent).toBe(true);
    expect(compareStates({ h: base() }, { h: theirs }).hosts.h!.packages.ansibleOwn).toEqual(['python3-pymysql']);
    const more = { ...base(), packages: ['apache2', 'nginx', 'ufw'] };
    expect(compareStates({ h: base() }, { h: more }).hosts.h!.packages.theirsOnly).toEqual(['apache2']);
    expect(compareStates({ h: base() }, { h: more }).equivalent).toBe(false);
  });

  it('reports a firewall rule, a unit state or a file line that differs, by section', () => {
    const theirs = { ...base(), ufw: ['### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'ENABLED=yes'], 'unit nginx': ['inactive', 'enabled'] };
    const r = compareStates({ h: base() }, { h: theirs });
    expect(r.equivalent).toBe(false);
    expect(r.hosts.h!.differs.map((d) => d.what).sort()).toEqual(['ufw', 'unit nginx']);
    expect(r.hosts.h!.differs.find((d) => d.what === 'ufw')!.theirsOnly).toEqual(['### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in']);
  });

  it('masks secret values in what it reports', () => {
    const theirs = { ...base(), 'file /etc/app/config.json': ['640 root:app', '{ "password": "other-secret-2" }'] };
    const r = compareStates({ h: base() }, { h: theirs }, ['s3cret-value-1', 'other-secret-2']);
    const text = JSON.stringify(r);
    expect(text).not.toContain('s3cret-value-1');
    expect(text).not.toContain('other-secret-2');
    expect(text).toContain('********');
  });
});

describe('stateScript', () => {
  it('prints a file without its comments and blank lines, its mode and owner, and "absent" for a missing one', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'state-'));
    mkdirSync(path.join(dir, 'etc'));
    const f = path.join(dir, 'etc/x.conf');
    writeFileSync(f, '# Managed by someone\n// a comment too\n\nkey = value\n  # indented comment\n');
    const out = execFileSync('sh', ['-s'], { input: stateScript({ files: [f, path.join(dir, 'missing')], paths: [], units: [] }), encoding: 'utf8' });
    const section = out.split('@@file ')[1]!.split('\n');
    expect(section[0]).toBe(f);
    expect(section[1]).toMatch(/^\d{3} \S+:\S+$/);
    expect(section.slice(2).filter(Boolean)).toEqual(['key = value']);
    expect(out).toContain(`@@file ${path.join(dir, 'missing')}\nabsent`);
  });
});

describe('secretValuesOf', () => {
  it('reads the values of a name: "value" secrets file', () => {
    const f = path.join(mkdtempSync(path.join(tmpdir(), 'sec-')), 's.yml');
    writeFileSync(f, 'a: "value-one"\nb: value-two\n');
    expect(secretValuesOf(f)).toEqual(['value-one', 'value-two']);
  });
});
