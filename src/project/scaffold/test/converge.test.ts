// Converges the example on the lab host of inventory/lab.yml (provision lab up --only web-01 first):
// --check predicts changes, the first run makes them, the second changes nothing.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect, test } from 'vitest';

const project = path.resolve(import.meta.dirname, '..');
const provision = (...args: string[]) => spawnSync('npx', ['provision', '--project', project, '-i', 'lab', ...args], { encoding: 'utf8' }).status;

test('converges, then changes nothing', () => {
  expect(provision('--check')).toBe(2);
  expect(provision()).toBe(2);
  expect(provision()).toBe(0);
});
