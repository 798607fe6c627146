/**
 * scripts/ascii.mjs: the build makes its bundles pure ASCII (bin/bundle.cjs reads them as latin1, and
 * V8 keeps them as one-byte strings): a non-ASCII character in a comment is written as \uXXXX text,
 * and one that esbuild left in code (a regex, a tagged template's raw text) refuses the build, since
 * escaping it there would make another program.
 */
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { toAscii } from '../../../scripts/ascii.mjs';

const isAscii = (s: string) => /^[\x00-\x7f]*$/.test(s);

describe('toAscii', () => {
  it('escapes non-ASCII characters in comments, line and block, and the program stays the same', async () => {
    const code = '// a → b … c\nexports.v = 1; /* ≥ 0.36 — ok */\n/**\n * «{{ … }}» 😀\n */\nexports.w = "x";\n';
    const ascii = await toAscii(code, 'f.cjs');
    expect(isAscii(ascii)).toBe(true);
    expect(ascii).toContain('// a \\u2192 b \\u2026 c');
    expect(ascii).toContain('\\ud83d\\ude00'); // an astral character: its two UTF-16 units
    const run = (c: string) => {
      const m = { exports: {} as Record<string, unknown> };
      vm.runInNewContext(c, { exports: m.exports });
      return m.exports;
    };
    expect(run(ascii)).toEqual(run(code));
  });

  it('returns ASCII code as it is', async () => {
    const code = 'exports.s = "\\u2192"; // escaped already\n';
    expect(await toAscii(code, 'f.cjs')).toBe(code);
  });

  it('refuses a non-ASCII character esbuild keeps in code: a tagged template, a regex', async () => {
    await expect(toAscii('exports.r = String.raw`é`; // é\n', 'f.cjs')).rejects.toThrow(/f\.cjs has non-ASCII characters outside comments/);
    await expect(toAscii('exports.re = /[→]/u;\n', 'f.cjs')).rejects.toThrow(/outside comments/);
  });
});
