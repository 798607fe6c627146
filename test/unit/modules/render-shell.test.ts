/**
 * Values rendered into command lines (command's cmd/unless/onlyif, validate): escaped for the
 * quoting context they stand in, proven with the real /bin/sh (dash on Debian), as a host runs them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeString, renderString, renderTemplate, templateFileReads, TemplateProblem } from '../../../src/modules/lib/render.js';

const INJECTION = "bob'; touch INJECTED; echo '";

const tmp = mkdtempSync(path.join(tmpdir(), 'provision-render-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Run a command line with the real /bin/sh in a fresh directory; its stdout and what it left there. */
function runSh(script: string): { stdout: string; files: string[] } {
  const dir = mkdtempSync(path.join(tmp, 'sh-'));
  const stdout = execFileSync('/bin/sh', ['-c', script], { cwd: dir, encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LC_ALL: 'C.UTF-8' } });
  return { stdout, files: readdirSync(dir) };
}

const shell = (text: string, vars: Record<string, unknown>) => renderString(text, vars, { shell: true });

describe('a command line renders every value as data', () => {
  it('the injection string as an inventory value is one quoted argument: sh runs no touch', () => {
    const cmd = shell('printf "<%s>" {{ owner }}', { owner: INJECTION });
    expect(cmd).toBe(`printf "<%s>" 'bob'\\''; touch INJECTED; echo '\\'''`);
    const { stdout, files } = runSh(cmd);
    expect(stdout).toBe(`<${INJECTION}>`);
    expect(files).toEqual([]);
  });

  it('a value the playbook already put in quotes stays inside them (no double quoting to break out of)', () => {
    for (const text of ["printf '<%s>' '{{ owner }}'", 'printf "<%s>" "{{ owner }}"', 'printf "<%s>" "$(printf %s {{ owner }})"', 'printf "<%s>" "$(printf %s \'{{ owner }}\')"', "printf '<%s>' x{{ owner }}y"]) {
      const { stdout, files } = runSh(shell(text, { owner: INJECTION }));
      expect(stdout, text).toBe(text.includes('x{{') ? `<x${INJECTION}y>` : `<${INJECTION}>`);
      expect(files, text).toEqual([]);
    }
  });

  it('| quote is a filter of every template, and in a command line it is not quoted twice', () => {
    expect(renderString('chown {{ owner | quote }} /srv', { owner: "o'neil" })).toBe("chown 'o'\\''neil' /srv");
    expect(shell('chown {{ owner | quote }} /srv', { owner: "o'neil" })).toBe("chown 'o'\\''neil' /srv");
    expect(runSh(shell("printf '<%s>' '{{ owner | quote }}'", { owner: INJECTION })).stdout).toBe(`<${INJECTION}>`);
    expect(renderString('rm -f {{ files | quote }}', { files: ['a b', 'c'] })).toBe("rm -f 'a b' c");
  });

  it('a list becomes one word per item; | safe puts a trusted fragment as written', () => {
    expect(runSh(shell("printf '<%s>' {{ args }}", { args: ['a b', "c'd", '$(id)'] })).stdout).toBe("<a b><c'd><$(id)>");
    expect(shell('ls {{ flags | safe }} /', { flags: '-l -a' })).toBe('ls -l -a /');
  });

  it('only | safe opts out: values nunjucks marks safe for HTML (| escape) are still escaped', () => {
    const { stdout, files } = runSh(shell('printf "<%s>" {{ owner | escape }}', { owner: 'a; touch INJECTED' }));
    expect(stdout).toBe('<a; touch INJECTED>');
    expect(files).toEqual([]);
  });

  it('loops and conditions: each value escaped where it lands', () => {
    const cmd = shell("{% for u in users %}printf '<%s>' {{ u }}; {% endfor %}{% if owner %}printf '[%s]' \"{{ owner }}\"{% endif %}", { users: ['x;y', INJECTION], owner: '$(touch INJECTED)' });
    const { stdout, files } = runSh(cmd);
    expect(stdout).toBe(`<x;y><${INJECTION}>[$(touch INJECTED)]`);
    expect(files).toEqual([]);
  });

  it('a comment cannot be ended by a value with a newline', () => {
    const { stdout, files } = runSh(shell('printf ok # {{ note }}', { note: 'a\ntouch INJECTED' }));
    expect(stdout).toBe('ok');
    expect(files).toEqual([]);
  });

  // Printable ASCII, hostile shell characters and any Unicode, but no NUL (no C string holds one).
  const hostile = fc.constantFrom("'", '"', '\\', '`', '$', '$(', ')', '${', '}', ';', '&', '|', '\n', '\t', ' ', '*', '#', '!', '<', '>', '~');
  const value = fc
    .oneof(fc.string({ unit: 'grapheme', maxLength: 30 }), fc.array(fc.oneof(hostile, fc.string({ maxLength: 3 })), { maxLength: 16 }).map((xs) => xs.join('')))
    .filter((s) => !s.includes('\0'));

  it.each([
    ['unquoted', 'printf %s {{ v }}; printf END'],
    ['in single quotes', "printf %s '{{ v }}'; printf END"],
    ['in double quotes', 'printf %s "{{ v }}"; printf END'],
    ['inside $( ) in double quotes', 'printf %s "$(printf %s {{ v }})"; printf END'],
    ['concatenated into a word', 'printf %s pre{{ v }}post; printf END'],
  ])('property, %s: /bin/sh prints exactly the value', (_name, template) => {
    fc.assert(
      fc.property(value, (v) => {
        const { stdout, files } = runSh(shell(template, { v }));
        // $( ) drops trailing newlines, as it always does.
        const expected = template.includes('$(') ? v.replace(/\n+$/, '') : v;
        expect(stdout).toBe((template.includes('pre{{') ? `pre${expected}post` : expected) + 'END');
        expect(files).toEqual([]);
      }),
      { numRuns: 40 },
    );
  });
});

describe('places a value cannot be escaped reliably are refused when the playbook is read', () => {
  it.each([
    ['inside backquotes', 'echo `id {{ v }}`', 'a value inside backquotes (use $( … )) cannot be escaped reliably in a command line (line 1, column 13 of the template)'],
    ['in a here-document', 'cat <<EOF\n{{ v }}\nEOF', 'a value after a here-document (<<) cannot be escaped reliably in a command line (line 2, column 4 of the template)'],
    ['inside ${ }', 'echo ${X:-{{ v }}}', 'a value inside ${ … } cannot be escaped reliably in a command line (line 1, column 14 of the template)'],
    ['after a backslash', 'echo \\{{ v }}', 'a value right after a backslash cannot be escaped reliably in a command line (line 1, column 10 of the template)'],
    ['after case', 'case $1 in a) echo {{ v }};; esac', 'a value after a case … esac cannot be escaped reliably in a command line (line 1, column 23 of the template)'],
    ['quotes left open by one branch', "{% if x %}echo '{% endif %}{{ v }}", 'the branches of this {% if %} leave the command line quoted differently: close quotes inside each branch (line 1, column 4 of the template)'],
    ['a macro', '{% macro m() %}x{% endmacro %}{{ m() }}', '{% macro %} is not supported in a command line: compute the value in a var, or use a template file (line 1, column 4 of the template)'],
  ])('%s', (_name, text, message) => {
    let err: unknown;
    try {
      analyzeString(text, { shell: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TemplateProblem);
    expect((err as TemplateProblem).described).toBe(message);
    // The same text is fine where it is not a command line.
    expect(() => analyzeString(text)).not.toThrow();
  });
});

describe('what a template reads', () => {
  it('var paths through lookups, loops and filters; a computed key reads the whole var', () => {
    const paths = (t: string) => analyzeString(t).paths.map((p) => p.join('.'));
    expect(paths('{{ db.password | dump }}')).toEqual(['db.password']);
    expect(paths('{{ db["password"] }}')).toEqual(['db.password']);
    // The loop variable counts as read too: a name that shadows a var is never taken as not reading it.
    expect(paths('{% for u in users %}{{ u.name }}{% endfor %}')).toEqual(['users', 'u', 'u.name']);
    expect(paths('{{ db[key] }}')).toEqual(['db', 'key']);
    expect(paths('{{ x | replace("a", y) }}')).toEqual(['x', 'y']);
  });

  it('template files: | quote is there, and every file it includes counts', () => {
    writeFileSync(path.join(tmp, 'part.njk'), '{{ inner }}');
    writeFileSync(path.join(tmp, 'main.njk'), 'ExecStart=/bin/run {{ args | quote }}\n{% include "part.njk" %}\n');
    expect(renderTemplate(path.join(tmp, 'main.njk'), { args: ['a b', 'c'], inner: 'i' })).toBe("ExecStart=/bin/run 'a b' c\ni");
    expect(templateFileReads(path.join(tmp, 'main.njk')).paths.map((p) => p.join('.'))).toEqual(['args', 'inner']);
  });
});
