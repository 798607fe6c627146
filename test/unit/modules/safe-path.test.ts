/**
 * The shell walk of lib/safe-path.ts, run by a real /bin/sh on this machine (no host needed):
 * a directory swapped for a link between the walk's look and its step is refused (a `cd` wrapper
 * makes the swap happen exactly there), and who may change a directory is read from its owner and
 * mode (a `stat` stand-in gives the owner and mode, so no chown is needed).
 * The same walk on a real host, with a real user racing it: test/integration/symlink-race.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { enterDirectoryScript, PATH_REFUSED_EXIT } from '../../../src/modules/lib/safe-path.js';

const sh = (script: string, env: NodeJS.ProcessEnv = process.env) => spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', env });

describe('enter: the walk to a directory', () => {
  it('arrives in a directory reached through real directories', () => {
    const base = mkdtempSync(path.join(tmpdir(), 'provision-walk-'));
    mkdirSync(path.join(base, 'a', 'b'), { recursive: true });
    const r = sh(`${enterDirectoryScript(path.join(base, 'a', 'b'))}\npwd -P`);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(path.join(base, 'a', 'b'));
  });

  it('a directory swapped for a link after the walk looked at it, before it stepped in: refused, nothing done in the target', () => {
    const base = mkdtempSync(path.join(tmpdir(), 'provision-walk-'));
    mkdirSync(path.join(base, 'home', 'sub'), { recursive: true });
    mkdirSync(path.join(base, 'canary'));
    // The swap, at the one moment that matters: inside the walk's `cd` of that component.
    const swapInCd = `cd() { if [ "\${3:-}" = sub ] && [ ! -L sub ]; then mv sub sub.real && ln -s ../canary sub; fi; command cd "$@"; }`;
    const r = sh(`${swapInCd}\n${enterDirectoryScript(path.join(base, 'home', 'sub'))}\ntouch planted`);
    expect(r.status).toBe(PATH_REFUSED_EXIT);
    expect(r.stderr).toContain(`provision refused: ${path.join(base, 'home', 'sub')} was replaced (by a link?) while provision entered it`);
    expect(readdirSync(path.join(base, 'canary'))).toEqual([]);
  });

  it('who may change a directory: root, its owner, a group or everyone (sticky or not)', () => {
    const bin = mkdtempSync(path.join(tmpdir(), 'provision-stat-'));
    // controller() asks `stat -c '%u %g %a' .`; this stand-in answers with $FAKE_STAT.
    writeFileSync(path.join(bin, 'stat'), '#!/bin/sh\necho "$FAKE_STAT"\n');
    chmodSync(path.join(bin, 'stat'), 0o755);
    const controllerOf = (stat: string) =>
      sh(`${enterDirectoryScript('/')}\ncontroller`, { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_STAT: stat }).stdout.trim();
    expect(controllerOf('0 0 755')).toBe('root');
    expect(controllerOf('0 0 775')).toBe('root'); // root's own group
    expect(controllerOf('1000 1000 755')).toBe('user:1000');
    expect(controllerOf('1000 1000 700')).toBe('user:1000');
    expect(controllerOf('0 33 775')).toBe('shared'); // www-data's members
    expect(controllerOf('0 33 2775')).toBe('shared');
    expect(controllerOf('0 0 757')).toBe('shared');
    expect(controllerOf('0 0 1777')).toBe('sticky');
  });
});
