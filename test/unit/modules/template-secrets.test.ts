import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { templateModule } from '../../../src/modules/index.js';
import { emptyPredictedState } from '../../../src/modules/types.js';
import { Secret } from '../../../src/util/secrets.js';
import { debianFacts, fileProbeResults, testHost } from './fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'provision-tpl-'));
const SECRET = 'Pa55\\w0rd"2024';

async function changeFor(template: string, vars: Record<string, unknown>, extraFiles: Record<string, string> = {}) {
  const src = path.join(dir, `t-${Math.random().toString(36).slice(2, 8)}.j2`);
  writeFileSync(src, template);
  for (const [name, text] of Object.entries(extraFiles)) writeFileSync(path.join(dir, name), text);
  const dest = '/etc/mysql/client.cnf';
  const params = templateModule.schema.parse({ src, dest, vars });
  const plan = await templateModule.plan(params, {
    host: testHost(),
    facts: debianFacts(),
    check: false,
    predicted: emptyPredictedState(),
    results: new Map(fileProbeResults(dest, { type: 'file', content: '[client]\npassword=old-value\n' })),
    run: async () => ({ stdout: '', code: 0 }),
  });
  return plan.changes[0]!;
}

describe('a template that reads a secret is sensitive: no before/after in its change', () => {
  it.each([
    ['the secret as it is', '[client]\npassword={{ db_password }}\n'],
    // The raw value is not in the output of these: only reading the var says the file is sensitive.
    ['| dump (JSON-escaped)', '{"password": {{ db_password | dump }}}\n'],
    ['| urlencode', 'url=mysql://app:{{ db_password | urlencode }}@db/app\n'],
    ['| replace', 'x={{ db_password | replace("5", "") }}\n'],
    ['| length only', 'len={{ db_password | length }}\n'],
    ['a nested var', 'pw={{ mysql.app.password | upper }}\n'],
    ['a loop over a list that holds secrets', '{% for u in accounts %}{{ u.name }}:{{ u.password | reverse }}\n{% endfor %}'],
    ['an included template', '[client]\n{% include "secret-part.j2" %}\n'],
  ])('%s', async (_name, template) => {
    const pw = new Secret('db_password', SECRET);
    const change = await changeFor(template, { db_password: pw, mysql: { app: { password: pw } }, accounts: [{ name: 'app', password: pw }] }, { 'secret-part.j2': 'password={{ db_password | dump }}\n' });
    expect(change).toMatchObject({ action: 'update content', sensitive: true });
    expect(change.before).toBeUndefined();
    expect(change.after).toBeUndefined();
  });

  it('a template that reads no secret keeps its diff, even with secrets among its vars', async () => {
    const pw = new Secret('db_password', SECRET);
    const change = await changeFor('[client]\nhost={{ mysql.app.host }}\n', { db_password: pw, mysql: { app: { host: 'db1', password: pw } } });
    expect(change.sensitive).toBeUndefined();
    expect(change.after).toBe('[client]\nhost=db1\n');
  });
});
