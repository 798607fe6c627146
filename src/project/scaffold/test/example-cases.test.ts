// The module's cases: each file of test/cases/example/ is recorded probe output in, the plan expected out.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { planCase, type ModuleCase } from 'provision';
import { module } from '../modules/example';

const dir = path.join(import.meta.dirname, 'cases', 'example');
for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
  const c = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as ModuleCase;
  test(`${file}: ${c.description}`, async () => {
    const plan = await planCase(module, c);
    expect(plan.changes.length).toBe(c.expected.changes);
    const commands = plan.commands.map((cmd) => (cmd.kind === 'shell' ? cmd.cmd : cmd.describe));
    expect(commands.length).toBe(c.expected.commands.length);
    c.expected.commands.forEach((want, i) => expect(commands[i]).toContain(want));
  });
}
