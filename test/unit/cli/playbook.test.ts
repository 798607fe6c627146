import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadPlaybook } from '../../../src/executor/playbook.js';
import { moduleNames } from '../../../src/modules/index.js';
import { registerRole } from '../../../src/roles/index.js';
import { PlaybookError } from '../../../src/util/errors.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures');
const good = path.join(fixtures, 'good/playbook');
const bad = path.join(fixtures, 'bad/playbook');

registerRole({ name: 'testrole', description: 'a role for the loader tests', defaults: {}, tasks: () => [] });

describe('playbook loader: a good playbook', () => {
  const pb = loadPlaybook(path.join(good, 'site.yml'));

  it('keeps plays in order with their settings', () => {
    expect(pb.file).toBe(path.join(good, 'site.yml'));
    expect(pb.dir).toBe(good);
    expect(pb.plays.map((p) => [p.name, p.hosts])).toEqual([
      ['web servers', 'web'],
      ['databases', 'db'],
    ]);
    expect(pb.plays[0]).toMatchObject({ serial: 2, maxFailPercentage: 25, vars: { http_port: 8080 }, roles: [] });
    expect(pb.plays[1]).toMatchObject({ roles: ['testrole'], tasks: [], handlers: [], vars: {}, serial: undefined });
  });

  it('turns each task into module + params, with notify always a list', () => {
    const [apt, tpl, copy] = pb.plays[0]!.tasks;
    expect(apt).toMatchObject({ name: 'install nginx', module: 'apt', params: { packages: ['nginx'] }, tags: ['packages'], notify: undefined });
    expect(tpl).toMatchObject({ module: 'template', notify: ['reload nginx'] });
    expect(copy).toMatchObject({ module: 'copy', whenVar: 'not maintenance_done', ignoreErrors: true, notify: ['reload nginx', 'log it'] });
    expect(pb.plays[0]!.handlers.map((h) => [h.name, h.module])).toEqual([
      ['reload nginx', 'service'],
      ['log it', 'command'],
    ]);
  });

  it('template sources are relative to the playbook, not the working directory', () => {
    expect((pb.plays[0]!.tasks[1]!.params as { src: string }).src).toBe(path.join(good, 'templates/nginx.conf.j2'));
  });
});

/** fixture → the message after "<fixture path>". */
const cases: Record<string, string> = {
  'yaml-error.yml': ':6:1: [0].tasks[0].command.cmd: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
  'duplicate-key.yml': ':6:7: [0].tasks[0].name: duplicate key (a key may appear once in a map)',
  'empty.yml': ':1:1: (top level): the playbook is empty',
  'empty-list.yml': ':1:1: (top level): a playbook is a list of plays',
  'not-a-list.yml': ':1:1: (top level): expected a list, got a map',
  'unknown-play-key.yml': ':2:3: [0].hsots: unknown key "hsots" (did you mean "hosts"?)',
  'serial-zero.yml': ':3:11: [0].serial: Too small: expected number to be >0 (got 0)',
  'task-without-name.yml': ':4:7: [0].tasks[0].name: required (a string)',
  'tags-string.yml': ':6:13: [0].tasks[0].tags: expected a list, got string "db"',
  'unknown-role.yml': ':3:11: [0].roles[0]: unknown role "ngnix"',
  'unknown-module.yml': ':5:7: [0].tasks[0].yum: unknown module "yum"',
  'no-module.yml': ':4:7: [0].tasks[0]: a task names exactly one module (found none)',
  'two-modules.yml': ':4:7: [0].tasks[0]: a task names exactly one module (found command, file)',
  'bad-params.yml': ':6:15: [0].tasks[0].file.path: an absolute path (got "tmp/x")',
  'bad-enum.yml': ':7:16: [0].tasks[0].file.state: Invalid option: expected one of "file"|"directory"|"link"|"absent"|"touch" (got "gone")',
  'module-unknown-param.yml': ':7:9: [0].tasks[0].command.creats: unknown key "creats"',
  'template-relative-dest.yml': ':5:35: [0].tasks[0].template.dest: an absolute path (got "etc/a")',
  'notify-unknown.yml': ':6:15: [0].tasks[0].notify: no handler named "restart ngnix"',
  // Templates in params are parsed when the playbook is read, not on each host after connecting.
  'template-syntax.yml': ':6:14: [0].tasks[0].command.cmd: expected variable end',
  'cmd-backquotes.yml': ':6:14: [0].tasks[0].command.cmd: a value inside backquotes (use $( … )) cannot be escaped reliably in a command line (line 1, column 13 of the template)',
};

function loadError(file: string): PlaybookError {
  try {
    loadPlaybook(file);
  } catch (err) {
    expect(err).toBeInstanceOf(PlaybookError);
    return err as PlaybookError;
  }
  throw new Error(`${file} loaded without an error`);
}

describe('playbook loader: bad playbooks, one exact message each', () => {
  it('every fixture has an expected message (and every message a fixture)', () => {
    expect(readdirSync(bad).sort()).toEqual(Object.keys(cases).sort());
  });

  it.each(Object.entries(cases))('%s', (name, expected) => {
    const file = path.join(bad, name);
    expect(loadError(file).message).toBe(file + expected);
  });

  it('hints list what exists', () => {
    // Other modules come and go; the hint lists whatever is registered.
    expect(loadError(path.join(bad, 'unknown-module.yml')).hint).toBe(`modules: ${moduleNames().join(', ')}`);
    expect(moduleNames()).toEqual(expect.arrayContaining(['apt', 'command', 'copy', 'file', 'service', 'template']));
    expect(loadError(path.join(bad, 'notify-unknown.yml')).hint).toBe('handlers: restart nginx');
  });

  it('a missing playbook file', () => {
    const file = path.join(bad, 'nope.yml');
    expect(loadError(file).message).toBe(`playbook ${file}: no such file`);
  });
});
