import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadInventory, prepareHosts } from '../../../src/inventory/index.js';
import { InventoryError } from '../../../src/util/errors.js';

/*
 * Bad Ansible inventories: one fixture per mistake, one exact message each, with file:line (INI) or
 * file:line:col (YAML). Mistakes in a host's connection vars are found when the host is prepared
 * (before any connection), the others when the inventory is loaded.
 * vault-encrypted.yml was made with: ansible-vault encrypt --vault-password-file ../../good/ansible/vault-password
 */
const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/bad/ansible');

const cases: Record<string, string> = {
  'group-vars-list': '/group_vars/all.yml:1:1: (top level): the vars of a vars file are a map of name: value, got a list',
  'ini-bad-var-name.ini': ':1: invalid var name "http-port": a var name is letters, digits and _',
  'ini-become-method.ini': ':1: ansible_become_method: "su" is not supported: provision becomes another user with sudo (host web1)',
  'ini-become.ini': ':1: ansible_become: expected true or false, got string "maybe" (host web1)',
  'ini-child-undeclared.ini': ':5: [prod:children] names "db", which is not declared (as [db] or [db:children])',
  'ini-children-cycle.ini': ':1: children form a cycle (a → b → a)',
  'ini-host-no-value.ini': ':1: expected key=value after the host name, got "ansible_host"',
  'ini-jump-chain.ini': ':1: ansible_ssh_common_args: "a,b" is a chain of jump hosts; provision jumps through one (make the first a host of the inventory with its own jump)',
  'ini-port.ini': ':1: ansible_port: expected a port number, got string "abc" (host web1)',
  'ini-range-width.ini': `:1: "web[01:3]": a zero-padded host range's begin and end have the same width`,
  'ini-section-spaces.ini': ':1: invalid section "[web servers]" (no spaces inside the brackets; [group], [group:vars] or [group:children])',
  'ini-section-type.ini': ':1: section [web:hostz] has an unknown type "hostz" (hosts, vars or children)',
  'ini-unclosed-quote.ini': ':1: cannot split this host line (an unclosed quote?)',
  'ini-vars-no-value.ini': ':4: expected key=value in [web:vars], got "just text"',
  'ini-vars-undeclared.ini': ':3: [db:vars] is for a group that is not declared in this file',
  'vault-encrypted.yml': ': an inventory file encrypted with ansible-vault is not read',
  'yaml-bad-var-name.yml': ':3:5: all.vars.http-port: invalid name "http-port": a var name is letters, digits and _',
  'yaml-group-list.yml': ':3:10: all.children.web: a group is a map of hosts:, children: and vars:, got a list',
  'yaml-plugin.yml': ':1:1: plugin: inventory plugins (dynamic inventories) are not supported; export the inventory with ansible-inventory --list --yaml',
  'yaml-range-width.yml': `:3:5: all.hosts.web[01:3]: "web[01:3]": a zero-padded host range's begin and end have the same width`,
  'yaml-unknown-key.yml': ':2:3: all.childern: unknown key "childern" (a group has hosts:, children: and vars:)',
  'yaml-vault-not-hex.yml': ':4:34: all.hosts.web1.mysql_app_password: not a valid ansible-vault text: the body is not hexadecimal',
};

describe('bad Ansible inventories: one fixture per mistake, one exact message each', () => {
  it('every fixture has an expected message (and every message a fixture)', () => {
    expect(readdirSync(dir).sort()).toEqual(Object.keys(cases).sort());
  });

  it.each(Object.entries(cases))('%s', (name, expected) => {
    const file = path.join(dir, name);
    let err: unknown;
    try {
      const inv = loadInventory(name === 'group-vars-list' ? path.join(file, 'hosts') : file, {
        env: { PROVISION_VAULT_PASSWORD: 'correct horse battery staple' },
        sshConfig: false,
        interactive: false,
      });
      prepareHosts(inv, [...inv.hosts.keys()]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InventoryError);
    expect((err as Error).message).toBe(file + expected);
  });
});
