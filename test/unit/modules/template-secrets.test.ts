import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, test } from 'vitest';
import { templateModule } from '../../../src/modules/index.js';
import { emptyPredictedState } from '../../../src/modules/types.js';
import { Secret } from '../../../src/util/secrets.js';
import { debianFacts, fileProbeResults, testHost } from './fixtures.js';

test('a template that renders a secret is sensitive: no before/after in its change', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-tpl-'));
  const src = path.join(dir, 'client.cnf.j2');
  writeFileSync(src, '[client]\npassword={{ db_password }}\n');
  const dest = '/etc/mysql/client.cnf';
  const params = templateModule.schema.parse({ src, dest, vars: { db_password: new Secret('db_password', 's3cret-value') } });
  const plan = await templateModule.plan(params, {
    host: testHost(),
    facts: debianFacts(),
    check: false,
    predicted: emptyPredictedState(),
    results: new Map(fileProbeResults(dest, { type: 'file', content: '[client]\npassword=old-value\n' })),
    run: async () => ({ stdout: '', code: 0 }),
  });
  expect(plan.changes[0]).toMatchObject({ action: 'update content', sensitive: true });
  expect(plan.changes[0]!.before).toBeUndefined();
  expect(plan.changes[0]!.after).toBeUndefined();
});
