// The bundles made pure ASCII (scripts/build.mjs). One non-ASCII character anywhere makes Node and V8
// hold the whole 3.3 MB source as a two-byte string: reading dist/provision.cjs took ~8 ms instead of
// ~0.5 (bin/bundle.cjs reads an ASCII file as latin1, a plain copy), and V8 scans twice the bytes.
// esbuild's charset 'ascii' (its default) escapes strings, plain templates and identifiers, but keeps
// comments as written (…, —, →, ≥ in ours and our dependencies'), regular expression literals, and
// the raw text of tagged templates (String.raw`é`), where an escape would change the value.
import { transform } from 'esbuild';

/**
 * `code` with each non-ASCII UTF-16 unit written as the text \uXXXX. Refused (an Error) when that
 * changed anything but comments: esbuild's whitespace-minified print (comments dropped, strings
 * printed escaped alike) of both must be the same. In a comment the escape is only text for a reader;
 * in a regex or a tagged template it would be another program, and a person must decide instead.
 * (A source map's columns after such a character on its line are off by five per character; in
 * today's bundles a comment's end is all that follows one.)
 */
export async function toAscii(code, file) {
  const ascii = code.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii === code) return code;
  const print = async (text) => (await transform(text, { loader: 'js', minifyWhitespace: true, legalComments: 'none', logLevel: 'silent' })).code;
  const [before, after] = await Promise.all([print(code), print(ascii)]);
  if (before !== after) {
    let i = 0;
    while (before[i] === after[i]) i++;
    throw new Error(`build: ${file} has non-ASCII characters outside comments (a regex or a tagged template?), near: ${before.slice(Math.max(0, i - 60), i + 20)}`);
  }
  return ascii;
}
