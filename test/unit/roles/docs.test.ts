/** docs/roles/*.md are generated from the role schemas (npm run docs): a stale doc fails here. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import '../../../src/roles/builtin.ts';
import { renderRoleDoc, varRows } from '../../../src/roles/docs.ts';
import { getRole, roleNames } from '../../../src/roles/index.ts';

const docs = path.resolve(import.meta.dirname, '../../../docs/roles');
const converted = roleNames();
const committed = (role: string) => readFileSync(path.join(docs, `${role}.md`), 'utf8');

describe('docs/roles/*.md', () => {
  it.each(converted)('%s.md is what npm run docs makes of the schema', (role) => {
    expect(renderRoleDoc(getRole(role)!, committed(role)), `docs/roles/${role}.md is stale: run npm run docs`).toBe(committed(role));
  });

  it('every var of every converted role is in its doc, with its description', () => {
    for (const role of converted) {
      for (const row of varRows(getRole(role)!)) {
        expect(row.description, `${role}.${row.name} has no .describe()`).not.toBe('');
        expect(committed(role), `${role}.${row.name}`).toContain(`| \`${row.name}\``);
      }
    }
  });

  it('a change to a schema makes the committed doc stale', () => {
    const haproxy = getRole('haproxy')!;
    const changed = { ...haproxy, vars: haproxy.vars.extend({ haproxy_timeout: z.number().default(5).describe('new') }) };
    expect(renderRoleDoc(changed, committed('haproxy'))).not.toBe(committed('haproxy'));
    expect(renderRoleDoc({ ...haproxy, description: 'other' }, committed('haproxy'))).not.toBe(committed('haproxy'));
  });

  it('keeps the hand-written text around the generated blocks, and refuses a doc without them', () => {
    const text = committed('firewall');
    expect(text).toContain('## Lockout safety');
    const edited = text.replace('## Lockout safety', '## Lockout safety (edited by hand)');
    expect(renderRoleDoc(getRole('firewall')!, edited)).toBe(edited);
    expect(() => renderRoleDoc(getRole('firewall')!, '# Role `firewall`\n\nno markers\n')).toThrow(/no generated description block/);
  });

  it('shows the type, the default and the rules in words', () => {
    const nginx = committed('nginx');
    expect(nginx).toContain('| `nginx_proxy_read_timeout` | whole number ≥ 1 | `60` |');
    expect(nginx).toContain('- `app_port` differs from `http_port` and `nginx_status_port`.');
    expect(committed('firewall')).toContain('| `admin_cidrs` (shared) | list of addresses or CIDR networks | — (**required**) |');
    // A string YAML would read as a number is shown quoted, as it must be written.
    expect(committed('common')).toContain('| `login_umask` | octal umask | `"027"` |');
  });
});
