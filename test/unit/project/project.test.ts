/**
 * A project's own roles and modules (src/project): found by name when a playbook names them,
 * loaded at run time (TypeScript through tsx, YAML roles in Ansible's layout), refused when they
 * shadow a built-in without `overrides: true`; bad input in them is exit 4 naming file:line:col.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadInputs } from '../../../src/cli/load.ts';
import { expandPlay } from '../../../src/executor/index.ts';
import type { Facts } from '../../../src/facts/index.ts';
import { main } from '../../../src/cli/main.ts';
import { getModule, moduleNames } from '../../../src/modules/index.ts';
import { enableProjectDiscovery, projectDir, useProject, withDependencies } from '../../../src/project/index.ts';
import { renderRoleDoc } from '../../../src/roles/docs.ts';
import { getRole, parseRoleVars, roleNames, unreadVarWarnings } from '../../../src/roles/index.ts';
import { Secret } from '../../../src/util/secrets.ts';
import { captureOutput } from '../helpers/output.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const CLOSED = path.join(ROOT, 'test/fixtures/bad/cli/closed.yml');
const { stderr } = captureOutput();

/** A project folder with these files (path → text). */
function project(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-project-'));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  mkdirSync(path.join(dir, 'inventory'), { recursive: true });
  copyFileSync(CLOSED, path.join(dir, 'inventory', 'closed.yml'));
  return dir;
}

const play = (roles: string[], tasks = '') => `- name: p\n  hosts: web\n  roles: [${roles.join(', ')}]\n${tasks ? `  tasks:\n${tasks}` : ''}`;

/** Loads the project's playbook as every command does (with the project in use). */
function load(dir: string, playbook = 'playbooks/site.yml') {
  useProject(dir);
  enableProjectDiscovery();
  return loadInputs({ inventory: path.join(dir, 'inventory/closed.yml'), playbook: path.join(dir, playbook) });
}

/** The CLI in-process on a project (hosts on a closed port: a run that loads fine ends unreachable, exit 3). */
async function cli(dir: string, ...args: string[]): Promise<{ code: number; error: string }> {
  enableProjectDiscovery();
  stderr.length = 0;
  const code = await main(['--project', dir, '-i', 'closed', ...args]);
  return { code, error: stderr.join('').split('\n')[0]!.replace(/^provision: error: /, '') };
}

afterEach(() => {
  useProject(undefined);
  enableProjectDiscovery();
});

const TS_ROLE = `import { copy, defineRole, z } from 'provision';
export const role = defineRole({
  name: 'web-ts',
  description: 'a TS role of a project',
  vars: z.object({ web_ts_text: z.string().default('hi') }),
  tasks: (ctx) => [copy('a file', { dest: '/tmp/web-ts', content: ctx.vars.web_ts_text + ' ' + ctx.file('templates/x') })],
});
`;
const TS_MODULE = (name: string, extra = '') => `import { defineModule, NO_CHANGE, z } from 'provision';
import { Secret } from 'provision';
export const module = defineModule({
  name: '${name}',${extra}
  schema: z.strictObject({ token: z.instanceof(Secret).optional(), n: z.number().default(1) }),
  probes: () => [],
  plan: () => NO_CHANGE,
});
`;

describe('built-ins: found by the same rule, in tables made at build time', () => {
  it('the checked-in tables are current (npm run build regenerates them)', async () => {
    const { TABLES } = (await import(path.join(ROOT, 'scripts/gen-builtins.mjs'))) as { TABLES: Array<{ file: string; text(): string }> };
    for (const t of TABLES) expect(readFileSync(t.file, 'utf8'), `${t.file} is stale: run npm run build`).toBe(t.text());
  });

  it('every role folder and every module is registered', () => {
    const folders = readdirSync(path.join(ROOT, 'src/roles'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(roleNames()).toEqual(expect.arrayContaining(folders));
    expect(moduleNames()).toEqual(expect.arrayContaining(['apt', 'command', 'copy', 'file', 'group', 'lineinfile', 'mysql_db', 'service', 'template', 'ufw', 'user']));
  });
});

describe('discovery', () => {
  it("a TypeScript role and module of the project are loaded by name, with the CLI's own zod and Secret", () => {
    const dir = project({
      'roles/web-ts/index.ts': TS_ROLE,
      'modules/hello.ts': TS_MODULE('hello'),
      'playbooks/site.yml': play(['web-ts'], '    - name: hello\n      hello: { n: 2 }\n'),
    });
    const { playbook, inventory } = load(dir);
    expect(playbook.plays[0]!.tasks[0]!.module).toBe('hello');
    const role = getRole('web-ts')!;
    expect(role.dir).toBe(path.join(dir, 'roles/web-ts'));
    // Expanded for a host: ctx.file() is a file of the role's folder in the project.
    const expanded = expandPlay(playbook.plays[0]!, inventory.hosts.get('web1')!, {} as Facts, inventory, playbook.file);
    if (!expanded.ok) throw expanded.error;
    const task = expanded.play.tasks[0]!;
    expect('params' in task ? task.params : task).toMatchObject({ content: `hi ${path.join(dir, 'roles/web-ts/templates/x')}` });
    // The same zod and Secret as the engine's: a Secret passes its z.instanceof(Secret).
    expect(getModule('hello')!.schema.safeParse({ token: new Secret('t', 'v') }).success).toBe(true);
  });

  it('a project whose package.json says "type": "module" loads its TypeScript too', () => {
    const dir = project({
      'package.json': '{ "name": "esm-project", "private": true, "type": "module" }',
      'modules/hello.ts': TS_MODULE('hello'),
      'playbooks/site.yml': play([], '    - name: hello\n      hello: { n: 2 }\n'),
    });
    load(dir);
    expect(getModule('hello')!.name).toBe('hello');
  });

  it('a playbook of built-ins loads nothing of the project (a broken role or module there is never read)', () => {
    const dir = project({
      'roles/broken/index.ts': 'export const role = ;\n',
      'modules/broken.ts': 'throw new Error("loaded")\n',
      'playbooks/site.yml': play([], '    - name: f\n      file: { path: /tmp/x, state: directory }\n'),
      'playbooks/broken.yml': play(['broken']),
    });
    expect(load(dir).playbook.plays[0]!.tasks[0]!.module).toBe('file');
    expect(() => load(dir, 'playbooks/broken.yml')).toThrow(new RegExp(`^${path.join(dir, 'roles/broken/index.ts')}:1:\\d+: `));
  });

  it('a name never leaves the project: "../x" is not looked up outside roles/', async () => {
    const dir = project({ 'evil/tasks/main.yml': '- name: t\n  file: { path: /tmp/x, state: directory }\n', 'playbooks/site.yml': play(['../evil']) });
    const r = await cli(dir);
    expect(r.code).toBe(4);
    expect(r.error).toMatch(/: unknown role "\.\.\/evil"$/);
  });

  it('--project: -i NAME and -p are read from the project, wherever the command starts', async () => {
    const dir = project({ 'playbooks/site.yml': play([], '    - name: f\n      file: { path: /tmp/x, state: directory }\n') });
    expect(process.cwd()).not.toBe(dir);
    expect((await cli(dir)).code).toBe(3); // loaded, then the closed port
    expect(projectDir()).toBe(dir);
    expect(await main(['-i', 'closed'])).toBe(4); // the same from the repository: no inventory/closed.yml there
  });

  it('a role named like a built-in is an error naming its file, unless it declares overrides: true', async () => {
    const shadow = project({ 'roles/common/tasks/main.yml': '- name: t\n  file: { path: /tmp/x, state: directory }\n', 'playbooks/site.yml': play(['common']) });
    const r = await cli(shadow);
    expect(r.code).toBe(4);
    expect(r.error).toBe(`${path.join(shadow, 'roles/common/meta/main.yml')}: role "common" has the name of a built-in role`);
    const replacing = project({
      'roles/common/tasks/main.yml': '- name: t\n  file: { path: /tmp/x, state: directory }\n',
      'roles/common/meta/main.yml': 'overrides: true\n',
      'playbooks/site.yml': play(['common']),
    });
    load(replacing);
    expect(getRole('common')!.dir).toBe(path.join(replacing, 'roles/common'));
  });

  it('a module named like a built-in is an error naming its file, unless it declares overrides: true', async () => {
    const tasks = '    - name: a\n      apt: { n: 1 }\n';
    const shadow = project({ 'modules/apt.ts': TS_MODULE('apt'), 'playbooks/site.yml': play([], tasks) });
    const r = await cli(shadow);
    expect(r.code).toBe(4);
    expect(r.error).toBe(`${path.join(shadow, 'modules/apt.ts')}: module "apt" has the name of a built-in module`);
    const replacing = project({ 'modules/apt.ts': TS_MODULE('apt', '\n  overrides: true,'), 'playbooks/site.yml': play([], tasks) });
    load(replacing);
    expect(getModule('apt')!.overrides).toBe(true);
  });

  it('a module whose name differs from its file, and a file that does not compile, are exit 4 naming the file', async () => {
    const misnamed = project({ 'modules/hello.ts': TS_MODULE('other'), 'playbooks/site.yml': play([], '    - name: h\n      hello: {}\n') });
    expect(await cli(misnamed)).toEqual({ code: 4, error: `${path.join(misnamed, 'modules/hello.ts')}: the module is named "other", its file "hello.ts": they must agree` });
    const broken = project({ 'modules/hello.ts': 'export const module = {\n  name: "hello",,\n};\n', 'playbooks/site.yml': play([], '    - name: h\n      hello: {}\n') });
    const r = await cli(broken);
    expect(r.code).toBe(4);
    expect(r.error).toMatch(new RegExp(`^${path.join(broken, 'modules/hello.ts')}:2:\\d+: `));
  });
});

describe('YAML roles (Ansible layout)', () => {
  const role = (name: string, files: Record<string, string>) => Object.fromEntries(Object.entries(files).map(([f, t]) => [`roles/${name}/${f}`, t]));

  it('dependencies run before the role, each once; a cycle is exit 4 naming where it closes and the whole cycle', async () => {
    const dir = project({
      ...role('a', { 'meta/main.yml': 'dependencies: [c, b]\n' }),
      ...role('b', { 'meta/main.yml': 'dependencies:\n  - role: c\n' }),
      ...role('c', { 'tasks/main.yml': '- name: c\n  file: { path: /tmp/c, state: directory }\n' }),
      'playbooks/site.yml': play(['a', 'c']),
    });
    expect(load(dir).playbook.plays[0]!.roles).toEqual(['c', 'b', 'a']);
    const cyclic = project({
      ...role('a', { 'meta/main.yml': 'dependencies: [b]\n' }),
      ...role('b', { 'meta/main.yml': '# b needs a\ndependencies:\n  - a\n' }),
      'playbooks/site.yml': play(['a']),
    });
    expect(await cli(cyclic)).toEqual({ code: 4, error: `${path.join(cyclic, 'roles/b/meta/main.yml')}:3:5: role dependency cycle: a → b → a` });
    expect(() => withDependencies(['a'])).toThrow('role dependency cycle: a → b → a');
  });

  it('a template missing from templates/ is exit 4 with file:line:col', async () => {
    const dir = project({
      ...role('web', { 'tasks/main.yml': '- name: ok\n  file: { path: /tmp/w, state: directory }\n- name: page\n  template: { src: page.j2, dest: /tmp/w/page }\n' }),
      'playbooks/site.yml': play(['web']),
    });
    expect(await cli(dir)).toEqual({ code: 4, error: `${path.join(dir, 'roles/web/tasks/main.yml')}:4:20: [1].template.src: "page.j2" not found in ${path.join(dir, 'roles/web/templates')}/` });
  });

  it('an unknown module in a role is exit 4 with file:line:col', async () => {
    const dir = project({ ...role('web', { 'tasks/main.yml': '- name: ok\n  file: { path: /tmp/w, state: directory }\n- name: bad\n  nosuch: { x: 1 }\n' }), 'playbooks/site.yml': play(['web']) });
    expect(await cli(dir)).toEqual({ code: 4, error: `${path.join(dir, 'roles/web/tasks/main.yml')}:4:3: [1].nosuch: unknown module "nosuch"` });
  });

  it('a notify of a handler the role does not have is exit 4 with file:line:col', async () => {
    const dir = project({
      ...role('web', {
        'tasks/main.yml': '- name: d\n  file: { path: /tmp/w, state: directory }\n  notify: restart it\n',
        'handlers/main.yml': '- name: restart web\n  command: { cmd: "true" }\n',
      }),
      'playbooks/site.yml': play(['web']),
    });
    const r = await cli(dir);
    expect(r).toEqual({ code: 4, error: `${path.join(dir, 'roles/web/tasks/main.yml')}:3:11: [0].notify: no handler named "restart it"` });
  });

  it("meta's argument_specs (and defaults/main.yml) are the role's vars schema: types, required, choices, defaults, docs", () => {
    const dir = project({
      ...role('web', {
        'defaults/main.yml': 'web_port: 8080\nweb_extra: [a]\n',
        'meta/main.yml': `argument_specs:
  main:
    short_description: A web role
    options:
      web_port: { type: int, description: the port }
      web_name: { type: str, required: true, description: the site name }
      web_mode: { type: str, choices: [fast, safe], default: safe }
      web_tags: { type: list, elements: str }
`,
        'tasks/main.yml': '- name: d\n  file: { path: /tmp/w, state: directory }\n',
      }),
      'playbooks/site.yml': play(['web']),
    });
    load(dir);
    const web = getRole('web')!;
    const host = { name: 'web1', groups: ['web'] };
    expect(parseRoleVars(web, { web_name: 'x' }, host).vars).toEqual({ web_name: 'x', web_port: 8080, web_mode: 'safe', web_extra: ['a'] });
    const bad = parseRoleVars(web, { web_port: '80', web_mode: 'slow', web_tags: [1] }, host).issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(bad).toEqual(['web_port: expected a whole number, got "80"', 'web_name: required', 'web_mode: one of fast, safe, got "slow"', 'web_tags.0: expected a string, got 1'].map((s) => expect.stringContaining(s.split(':')[0]!)));
    expect(bad).toHaveLength(4);
    expect(bad[1]).toBe('web_name: required');
    const doc = renderRoleDoc(web);
    expect(doc).toContain('A web role');
    expect(doc).toContain('the site name');
    expect(doc).toContain('| `web_port` | number | `8080` | the port |');
    expect(doc).toContain('| `web_mode` | literal | `safe` |  |');
  });

  it("a misspelt var of a YAML role is warned as for a TypeScript role's (the schema and the role's templates are what it reads)", () => {
    const dir = project({
      ...role('web', {
        'defaults/main.yml': 'web_port: 8080\n',
        'templates/page.j2': '{{ web_title }}\n',
        'tasks/main.yml': '- name: page\n  template: { src: page.j2, dest: /tmp/page }\n',
      }),
      'playbooks/site.yml': play(['web']),
    });
    writeFileSync(path.join(dir, 'inventory/closed.yml'), `${readFileSync(CLOSED, 'utf8')}vars:\n  web_prot: 80\n  web_title: t\n`);
    const { inventory, playbook } = load(dir);
    const warnings = unreadVarWarnings(inventory, playbook);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/: web_prot: no role, template or task reads this var \(did you mean "web_port"\?\)$/);
  });

  it('a role var schema checks run before any connection (exit 4, naming the role)', async () => {
    const dir = project({
      ...role('web', { 'meta/main.yml': 'argument_specs:\n  main:\n    options:\n      web_name: { type: str, required: true }\n', 'tasks/main.yml': '- name: d\n  file: { path: /tmp/w, state: directory }\n' }),
      'playbooks/site.yml': play(['web']),
    });
    const r = await cli(dir);
    expect(r.code).toBe(4);
    expect(r.error).toContain('web_name: required');
  });
});

describe('provision init', () => {
  it('scaffolds a project whose playbook loads, whose module passes its own cases, and refuses a non-empty folder', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'provision-init-')), 'site');
    expect(await main(['init', dir])).toBe(0);
    const { playbook } = (useProject(dir), enableProjectDiscovery(), loadInputs({ inventory: path.join(dir, 'inventory/lab.yml'), playbook: path.join(dir, 'playbooks/site.yml') }));
    expect(playbook.plays[0]!.roles).toEqual(['example', 'example-ts']);
    expect(getRole('example')!.vars.shape).toHaveProperty('example_mode');
    // The module's case files, as the project's own test runs them (planCase from the public API).
    const { planCase } = await import('../../../src/api.ts');
    const casesDir = path.join(dir, 'test/cases/example');
    const cases = readdirSync(casesDir);
    expect(cases.length).toBeGreaterThanOrEqual(3);
    for (const f of cases) {
      const c = JSON.parse(readFileSync(path.join(casesDir, f), 'utf8'));
      const plan = await planCase(getModule('example')!, c);
      expect(plan.changes.length, f).toBe(c.expected.changes);
      expect(plan.commands.map((x) => (x.kind === 'shell' ? x.cmd : x.describe)).filter((cmd, i) => cmd.includes(c.expected.commands[i]))).toHaveLength(c.expected.commands.length);
    }
    stderr.length = 0;
    expect(await main(['init', dir])).toBe(4);
    expect(stderr.join('')).toContain(`init: ${dir} is not empty`);
  });
});

describe('provision init, bad input', () => {
  it('a lab instance that is not up and has no default subnet is exit 4 naming it; nothing is written', async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'provision-init-')), 'site');
    expect(await main(['init', dir, '--lab', 'no-such-instance'])).toBe(4);
    expect(stderr.join('')).toContain('init: --lab no-such-instance: instance "no-such-instance" is not up');
    expect(existsSync(dir)).toBe(false);
  });
});

describe('z is one zod', () => {
  it('the API re-exports the zod the engine uses', async () => {
    const api = await import('../../../src/api.ts');
    expect(api.z).toBe(z);
  });
});
