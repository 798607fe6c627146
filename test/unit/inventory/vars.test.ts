import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInventory, prepareHosts, type Inventory } from '../../../src/inventory/index.js';
import { Secret } from '../../../src/util/secrets.js';
import { thrown } from '../helpers/inventory-error.js';

/*
 * Vars that refer to vars ("{{ … }}"), as Ansible resolves them: per host, when read, with the
 * host's whole var set; a value that reads a secret is a secret; a cycle is an error naming it.
 */
const tmp = mkdtempSync(path.join(tmpdir(), 'provision-vars-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** Write files (path → text) into a fresh folder; load its first file. */
function inventory(files: Record<string, string>, env: NodeJS.ProcessEnv = {}): { inv: Inventory; dir: string; file: string } {
  const dir = path.join(tmp, String(n++));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    writeFileSync(path.join(dir, f), text);
  }
  const file = path.join(dir, Object.keys(files)[0]!);
  return { inv: loadInventory(file, { env, sshConfig: false, interactive: false }), dir, file };
}

describe('native inventories', () => {
  const { inv } = inventory(
    {
      'site.yml': `hosts:
  web1: { address: 10.0.0.1, groups: [web], vars: { http_port: 8080 } }
  web2: { address: 10.0.0.2, groups: [web] }
  db1: { address: 10.0.0.3, vars: { db_port: 5432, db_password: !secret db_password } }
groups:
  web:
    vars:
      upstream: "{{ inventory_hostname }}:{{ http_port }}"
vars:
  http_port: 80
  port_copy: "{{ http_port }}"
  ports: "{{ [http_port, 443] }}"
  labelled: "port {{ http_port }}"
  db_url: "postgres://app:{{ hostvars['db1'].db_password }}@db1:{{ hostvars['db1'].db_port }}/app"
  password_alias: "{{ hostvars['db1'].db_password }}"
  fallback: "{{ not_set | default('none') }}"
  web_hosts: "{{ groups['web'] | join(',') }}"
  mine: "{{ group_names }}"
  literal: !unsafe "{{ left as written }}"
`,
    },
    { PROVISION_SECRET_DB_PASSWORD: 'correct-horse-battery' },
  );
  const web1 = inv.hosts.get('web1')!.vars;

  it('a var that is one "{{ expression }}" keeps its type; text around it makes a string', () => {
    expect(web1.port_copy).toBe(8080);
    expect(web1.ports).toEqual([8080, 443]);
    expect(web1.labelled).toBe('port 8080');
  });

  it('evaluated per host, with that host\'s vars (a group var reads the host\'s own port)', () => {
    expect(web1.upstream).toBe('web1:8080');
    expect(inv.hosts.get('web2')!.vars.upstream).toBe('web2:80');
  });

  it("Ansible's magic vars: inventory_hostname, groups, group_names, hostvars; default() for what is not set", () => {
    expect(web1.web_hosts).toBe('web1,web2');
    expect(web1.mine).toEqual(['web']);
    expect(web1.fallback).toBe('none');
  });

  it('a var that reads a secret is a Secret (also through hostvars)', () => {
    expect(web1.password_alias).toBeInstanceOf(Secret);
    expect((web1.password_alias as Secret).reveal()).toBe('correct-horse-battery');
    expect(web1.db_url).toBeInstanceOf(Secret);
    expect((web1.db_url as Secret).reveal()).toBe('postgres://app:correct-horse-battery@db1:5432/app');
    expect(JSON.stringify({ ...web1 })).not.toContain('correct-horse-battery');
  });

  it('!unsafe is taken as written', () => {
    expect(web1.literal).toBe('{{ left as written }}');
  });
});

describe('Ansible inventories: the full var set of the host', () => {
  const { inv } = inventory({
    hosts: '[web]\nweb1 ansible_host=10.0.0.1 http_port=8080\nweb2 ansible_host=10.0.0.2\n[web:vars]\ndeploy_user=deploy\n',
    'group_vars/all.yml': 'http_port: 80\nurl: "http://{{ ansible_host }}:{{ http_port }}/"\nansible_user: "{{ deploy_user }}"\n',
  });

  it('a group_vars template reads a host var of higher precedence, and ansible_* vars', () => {
    expect(inv.hosts.get('web1')!.vars.url).toBe('http://10.0.0.1:8080/');
    expect(inv.hosts.get('web2')!.vars.url).toBe('http://10.0.0.2:80/');
  });

  it('connection vars may be templates too', () => {
    expect(inv.hosts.get('web1')!.connection.user).toBe('deploy');
  });
});

describe('mistakes, found when the var is read (a run reads the selected hosts\' vars before connecting)', () => {
  it('a cycle names its vars, in order, and the host', () => {
    const { inv, file } = inventory({ 'c.yml': 'hosts:\n  web1:\n    address: 10.0.0.1\n    vars:\n      a: "{{ b }}"\n      b: "x{{ c }}"\n      c: "{{ a }}"\n' });
    expect(thrown(() => prepareHosts(inv, ['web1'])).message).toBe(`${file}:5:10: a: vars form a cycle (a → b → c → a) (host web1)`);
  });

  it('a var that refers to itself', () => {
    const { inv, file } = inventory({ 'c.yml': 'hosts:\n  web1:\n    address: 10.0.0.1\n    vars:\n      path: "{{ path }}/bin"\n' });
    expect(thrown(() => inv.hosts.get('web1')!.vars.path).message).toBe(`${file}:5:13: path: vars form a cycle (path → path) (host web1)`);
  });

  it('a cycle through hostvars names host and var', () => {
    const { inv, file } = inventory({
      'c.yml': `hosts:
  web1: { address: 10.0.0.1, vars: { x: "{{ hostvars['db1'].y }}" } }
  db1: { address: 10.0.0.2, vars: { y: "{{ hostvars['web1'].x }}" } }
`,
    });
    expect(thrown(() => inv.hosts.get('web1')!.vars.x).message).toBe(`${file}:2:41: x: vars form a cycle (web1:x → db1:y → web1:x)`);
  });

  it('a var nobody defined', () => {
    const { inv, file } = inventory({ 'c.yml': 'hosts:\n  web1:\n    address: 10.0.0.1\n    vars:\n      mysql_app_password: "{{ vault_mysql_app_password }}"\n' });
    expect(thrown(() => prepareHosts(inv, ['web1'])).message).toBe(
      `${file}:5:27: mysql_app_password: its template reads "vault_mysql_app_password", which is not defined (host web1)`,
    );
  });

  it('a template that cannot be parsed', () => {
    const { inv, file } = inventory({ 'c.yml': 'hosts:\n  web1:\n    address: 10.0.0.1\n    vars:\n      a: "{{ b + }}"\n' });
    expect(thrown(() => inv.hosts.get('web1')!.vars.a).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:10: a: template error: .+ \\(host web1\\)$`));
  });

  it('only the hosts that are read: a broken var of another host does not stop this one', () => {
    const { inv } = inventory({ 'c.yml': 'hosts:\n  web1: { address: 10.0.0.1 }\n  web2: { address: 10.0.0.2, vars: { a: "{{ nope }}" } }\n' });
    expect(() => prepareHosts(inv, ['web1'])).not.toThrow();
    expect(() => prepareHosts(inv, ['web2'])).toThrow('its template reads "nope", which is not defined');
  });
});
