import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPlaybook, type YamlTask } from '../../../src/executor/playbook.js';
import { main } from '../../../src/cli/main.js';
import { getModule } from '../../../src/modules/index.js';
import { PlaybookError } from '../../../src/util/errors.js';
import { captureOutput } from '../helpers/output.ts';

const role = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/good/ansible-role');
const closedInventory = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/bad/cli/closed.yml');
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-ansible-names-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const essentials = (t: YamlTask) => ({ name: t.name, module: t.module, params: t.params, notify: t.notify, tags: t.tags });

describe('Ansible module names: a simple Ansible role binds to the same tasks as our spelling', () => {
  const ansible = loadPlaybook(path.join(role, 'site.yml')).plays[0]!.tasks;
  const native = loadPlaybook(path.join(role, 'native.yml')).plays[0]!.tasks;
  // Our own copy reads a relative src from the working directory; Ansible's beside the playbook (files/).
  for (const t of native) {
    const p = t.params as { src?: string };
    if (t.module === 'copy' && p.src) p.src = path.resolve(role, p.src);
  }

  it('has the same number of tasks in both spellings', () => {
    expect(ansible.map((t) => t.name)).toEqual(native.map((t) => t.name));
  });

  it.each(native.map((t, i) => [t.name, i] as const))('%s', (_name, i) => {
    expect(essentials(ansible[i]!)).toEqual(essentials(native[i]!));
    // Bound: parsed by the module's schema, defaults filled in, exactly as ours.
    const def = getModule(native[i]!.module)!;
    expect(def.schema.parse(ansible[i]!.params)).toEqual(def.schema.parse(native[i]!.params));
  });
});

function writeTasks(name: string, tasks: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, `- name: p\n  hosts: all\n  tasks:\n${tasks}`);
  return file;
}

function loadError(file: string): string {
  try {
    loadPlaybook(file);
  } catch (err) {
    expect(err).toBeInstanceOf(PlaybookError);
    return (err as PlaybookError).message.slice(file.length);
  }
  throw new Error(`${file} loaded without an error`);
}

function loadedTask(tasks: string): YamlTask {
  return loadPlaybook(writeTasks(`ok-${Math.random().toString(36).slice(2)}.yml`, tasks)).plays[0]!.tasks[0]!;
}

describe('an unquoted octal mode (YAML 1.2 reads 0644 as the number 644)', () => {
  // Regression: the number 644 was taken as decimal and became mode 1204 (sticky, -w----r--).
  it.each([
    ['file', '      file: { path: /x, state: directory, mode: 0755 }\n', '0755'],
    ['copy', '      copy: { dest: /x, content: y, mode: 0640 }\n', '0640'],
    ['ansible.builtin.file', '      ansible.builtin.file: { path: /x, mode: 02775 }\n', '02775'],
  ])('%s: the mode as written', (_m, line, mode) => {
    expect((loadedTask(`    - name: t\n${line}`).params as { mode: unknown }).mode).toBe(mode);
  });
});

describe('Ansible spellings that are accepted', () => {
  it("a free-form command line takes Ansible's inline creates=/chdir=", () => {
    const t = loadedTask('    - name: t\n      ansible.builtin.shell: make install chdir=/src creates=/usr/bin/app\n');
    expect(t.params).toEqual({ cmd: 'make install', chdir: '/src', creates: '/usr/bin/app' });
  });

  it('the old key=value form of a module\'s params, with strings for booleans', () => {
    const t = loadedTask('    - name: t\n      apt: name=nginx,curl state=latest update_cache=yes\n');
    expect(t).toMatchObject({ module: 'apt', params: { packages: ['nginx', 'curl'], state: 'latest', update_cache: true } });
  });

  it("the FQCN takes Ansible's defaults: no cache refresh unless asked, groups exactly as listed", () => {
    expect(loadedTask('    - name: t\n      ansible.builtin.apt: { name: nginx }\n').params).toEqual({ packages: ['nginx'], update_cache: false });
    expect(loadedTask('    - name: t\n      ansible.builtin.apt: { name: nginx, update_cache: true }\n').params).toEqual({ packages: ['nginx'], update_cache: true, cache_valid_time: 0 });
    // The bare name is ours too, and keeps our defaults.
    expect(loadedTask('    - name: t\n      apt: { name: nginx }\n').params).toEqual({ packages: ['nginx'] });
  });

  it('ufw: a policy without a direction is the incoming one, "any" is left out of a rule', () => {
    expect(loadedTask('    - name: t\n      community.general.ufw: { policy: reject }\n').params).toEqual({ default_incoming: 'reject' });
    expect(loadedTask('    - name: t\n      community.general.ufw: { rule: limit, port: 22, proto: tcp, from_ip: any, to_ip: 10.0.0.0/8, direction: in }\n').params).toEqual({
      rules: [{ rule: 'limit', port: '22', proto: 'tcp', to: '10.0.0.0/8' }],
    });
  });

});

/** Inline tasks → the exact message after the file's path. */
const bad: Array<[string, string, string]> = [
  [
    'an Ansible parameter we do not have',
    '    - name: t\n      ansible.builtin.apt:\n        name: nginx\n        autoremove: yes\n',
    ':7:9: ansible.builtin.apt: parameter "autoremove" is not supported (supported: name, pkg, package, packages, state, update_cache, update-cache, cache_valid_time, install_recommends, install-recommends, purge, lock_timeout)',
  ],
  [
    'a parameter in args:',
    '    - name: t\n      ansible.builtin.command: ls\n      args:\n        warn: false\n',
    ':7:9: ansible.builtin.command: parameter "warn" is not supported (supported: cmd, creates, removes, chdir, stdin)',
  ],
  ['a mode YAML reads as decimal', '    - name: t\n      ansible.builtin.file: { path: /x, mode: 644 }\n', ':5:47: ansible.builtin.file: mode: write the mode as a quoted octal string ("0644"): 644 is read as a decimal number'],
  ['force: no (create only)', '    - name: t\n      ansible.builtin.copy: { content: x, dest: /x, force: no }\n', ':5:60: ansible.builtin.copy: force: only force: true (always write) is supported'],
  ['a ufw state we do not have', '    - name: t\n      community.general.ufw: { state: reloaded }\n', ':5:39: community.general.ufw: state: "reloaded" is not supported (supported: enabled, disabled, reset)'],
  ['ufw port without rule', '    - name: t\n      community.general.ufw: { port: 80 }\n', ':5:30: community.general.ufw: port needs rule (allow, deny, limit or reject)'],
  ['two spellings of one param', '    - name: t\n      ansible.builtin.apt: { name: a, pkg: b }\n', ':5:39: ansible.builtin.apt: "pkg" sets packages a second time: give one of them'],
  // Our schema's message, at the place the Ansible parameter was written.
  ['a bad value under an Ansible name', '    - name: t\n      ansible.builtin.file: { dest: tmp/x }\n', ':5:37: [0].tasks[0].ansible.builtin.file.dest: an absolute path (got "tmp/x")'],
  ['an Ansible value we do not have', '    - name: t\n      ansible.builtin.apt: { name: a, state: fixed }\n', ':5:46: [0].tasks[0].ansible.builtin.apt.state: Invalid option: expected one of "present"|"absent"|"latest" (got "fixed")'],
];

describe('Ansible spellings that are not supported: one line, at load time', () => {
  it.each(bad)('%s', (_what, tasks, message) => {
    expect(loadError(writeTasks(`bad-${Math.random().toString(36).slice(2)}.yml`, tasks))).toBe(message);
  });

  const { stderr } = captureOutput();
  it('the CLI exits 4 before connecting', async () => {
    const file = writeTasks('cli.yml', bad[0]![1]);
    expect(await main(['-i', closedInventory, '-p', file])).toBe(4);
    expect(stderr.join('')).toContain(`provision: error: ${file}${bad[0]![2]}`);
  });
});
