/** `provision --version` is answered by bin/ without loading the bundle: it must say what the CLI says. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TOOL_VERSION } from '../../../src/util/version.js';

const bin = path.resolve(import.meta.dirname, '../../../bin/provision.cjs');

describe('provision --version', () => {
  it('prints the version the CLI carries (package.json), for --version and -V, and exits 0', () => {
    for (const flag of ['--version', '-V']) {
      const r = spawnSync(process.execPath, [bin, flag], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${TOOL_VERSION.replace(/^provision /, '')}\n`);
    }
  });
});
