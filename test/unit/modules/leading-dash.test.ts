/**
 * Values that start with "-" must never reach a command as options (`chown --reference=/etc/shadow`,
 * `systemctl -H evil`, `ln -sfn -rf …`). Where a leading "-" is never valid (unit, package, user and
 * group names, file owners) the schema refuses it; where it can be valid (link targets, directories)
 * it is passed after "--". One row per hostile value, per module.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../../src/facts/index.js';
import { emptyPredictedState, getModule, type Command, type ModuleContext } from '../../../src/modules/index.js';
import { quote } from '../../../src/util/quote.js';
import { debianFacts, fileProbeResults, testHost } from './fixtures.js';

const HOSTILE = ['-R', '--reference=/etc/shadow', '-', '-rf', '--help'];

/** [module, params with the hostile value in one field] → the schema must refuse that field. */
const refused: Array<[string, string, (v: string) => Record<string, unknown>]> = [
  ['apt', 'packages', (v) => ({ packages: [v] })],
  ['apt', 'packages', (v) => ({ packages: ['nginx', v], state: 'absent' })],
  ['service', 'name', (v) => ({ name: v, state: 'started' })],
  ['group', 'name', (v) => ({ name: v })],
  ['user', 'name', (v) => ({ name: v })],
  ['user', 'group', (v) => ({ name: 'app', group: v })],
  ['user', 'groups', (v) => ({ name: 'app', groups: ['sudo', v] })],
  ['user', 'home', (v) => ({ name: 'app', home: v })],
  ['user', 'shell', (v) => ({ name: 'app', shell: v })],
  ['file', 'owner', (v) => ({ path: '/srv/x', state: 'directory', owner: v })],
  ['file', 'group', (v) => ({ path: '/srv/x', state: 'directory', group: v })],
  ['file', 'path', (v) => ({ path: v, state: 'absent' })],
  ['copy', 'owner', (v) => ({ dest: '/srv/x', content: 'x', owner: v })],
  ['copy', 'group', (v) => ({ dest: '/srv/x', content: 'x', group: v })],
  ['copy', 'dest', (v) => ({ dest: v, content: 'x' })],
  ['template', 'owner', (v) => ({ dest: '/srv/x', src: 'x.njk', owner: v })],
  ['lineinfile', 'owner', (v) => ({ path: '/etc/x', line: 'a', owner: v })],
  ['lineinfile', 'group', (v) => ({ path: '/etc/x', line: 'a', group: v })],
  ['lineinfile', 'path', (v) => ({ path: v, line: 'a' })],
  // `cd -- -` is still "the previous directory": a directory to run in is absolute.
  ['command', 'chdir', (v) => ({ cmd: 'make', chdir: v })],
  // ufw's own parser looks for "--dry-run" anywhere in its arguments: a comment is an argument.
  ['ufw', 'rules', (v) => ({ rules: [{ rule: 'allow', port: 22, proto: 'tcp', comment: v }] })],
];

describe('a leading "-" is refused by the schema where it is never valid', () => {
  for (const [module, field, params] of refused) {
    it.each(HOSTILE)(`${module}.${field} = %s`, (value) => {
      const r = getModule(module)!.schema.safeParse(params(value));
      expect(r.success, `${module} accepted ${field}: ${value}`).toBe(false);
      expect(r.error!.issues.some((i) => i.path[0] === field)).toBe(true);
    });
  }

  it.each([
    ['service', { name: 'nginx' }],
    ['service', { name: 'getty@tty1.service' }],
    ['service', { name: 'systemd-journald' }],
    ['file', { path: '/srv/x', owner: 'www-data', group: 'ssl-cert' }],
    ['file', { path: '/srv/x', owner: '1000', group: '1000' }],
    ['file', { path: '/srv/x', owner: 'Debian-exim', group: '_ssh' }],
    ['lineinfile', { path: '/etc/x', line: 'a', owner: 'root', group: 'adm' }],
    ['copy', { dest: '/srv/x', content: 'x', owner: 'prometheus' }],
    ['user', { name: 'deploy', group: 'deploy', groups: ['sudo', 'www-data'], home: '/home/deploy', shell: '/bin/bash' }],
    ['group', { name: 'ssl-cert' }],
    ['apt', { packages: ['libc6-dev', 'g++', 'nginx=1.22.1-9'] }],
  ] as Array<[string, Record<string, unknown>]>)('the ordinary value still passes: %s %j', (module, params) => {
    expect(getModule(module)!.schema.safeParse(params).success).toBe(true);
  });

  it('an owner with ":" is refused too (chown would read a group out of it)', () => {
    expect(getModule('file')!.schema.safeParse({ path: '/srv/x', owner: 'root:shadow' }).success).toBe(false);
  });
});

function context(results: Array<[string, ProbeResult]>): ModuleContext {
  return {
    host: testHost(),
    facts: debianFacts(),
    check: false,
    predicted: emptyPredictedState(),
    results: new Map(results),
    run: async () => ({ stdout: '', code: 0 }),
  };
}

/** The script of `sh -c 'SCRIPT'` (as quote() wrote it). */
function unquoteShC(cmd: string): string {
  const m = /^sh -c '([\s\S]*)'$/.exec(cmd);
  return m ? m[1]!.split(`'\\''`).join("'") : cmd;
}

function text(c: Command): string {
  return c.kind === 'shell' ? c.cmd : c.describe;
}

/** The value, quoted as it appears in the command, is a word after the "--" word, never one before it. */
function expectAfterDoubleDash(cmd: string, value: string): void {
  const words = cmd.split(' ');
  const dashes = words.indexOf('--');
  expect(dashes, `a -- in: ${cmd}`).toBeGreaterThan(-1);
  expect(words.slice(0, dashes), `${value} before -- in: ${cmd}`).not.toContain(quote(value));
  expect(words.slice(dashes + 1), `${value} after -- in: ${cmd}`).toContain(quote(value));
}

describe('where a leading "-" can be valid, it is passed after "--"', () => {
  it.each(HOSTILE)('file state: link, target %s → ln -sfn -- TARGET PATH', async (value) => {
    const def = getModule('file')!;
    const p = def.schema.parse({ path: '/srv/link', state: 'link', src: value });
    const plan = await def.plan(p, context(fileProbeResults('/srv/link', 'absent')));
    expect(plan.commands).toHaveLength(1);
    // The link is made from inside its directory by a script (`sh -c SCRIPT`): look at the ln line of the script.
    const ln = unquoteShC(text(plan.commands[0]!)).split('\n').find((l) => l.includes('ln -sfn'))!;
    expectAfterDoubleDash(ln.replace(/^.*?(ln -sfn)/, '$1').replace(/'\\''/g, "'"), value);
  });

  it('command creates/removes: `test -e VALUE` has exactly one operand, so "-n" is a path (real /bin/sh)', () => {
    const def = getModule('command')!;
    const probes = def.probes(def.schema.parse({ cmd: 'make', creates: '-n', removes: '--help' }), testHost(), debianFacts());
    const dir = mkdtempSync(path.join(tmpdir(), 'provision-dash-'));
    const exit = (script: string) => {
      try {
        execFileSync('/bin/sh', ['-c', script], { cwd: dir, stdio: 'ignore' });
        return 0;
      } catch (err) {
        return (err as { status: number }).status;
      }
    };
    for (const probe of probes) {
      const script = probe.script!;
      expect(exit(script), `${script} with no such file`).toBe(1);
    }
    writeFileSync(path.join(dir, '-n'), '');
    mkdirSync(path.join(dir, '--help'));
    for (const probe of probes) expect(exit(probe.script!), `${probe.script} with the file there`).toBe(0);
  });
});
