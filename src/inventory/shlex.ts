/**
 * Python's shlex.split (POSIX mode), as Ansible splits INI host lines and ssh argument strings:
 * whitespace separates words; '…' is literal; in "…" a backslash escapes only " and \; outside
 * quotes a backslash escapes any character; with `comments`, a # where a word may start ends the
 * line, and a # inside a word does too (as shlex's word state treats commenters).
 * Returns undefined for an unclosed quote or a trailing backslash.
 */
export function shlexSplit(text: string, opts: { comments?: boolean } = {}): string[] | undefined {
  const out: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i];
      else word += c;
      continue;
    }
    if (/\s/.test(c)) {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else if (opts.comments && c === '#') {
      break;
    } else if (c === '\\') {
      if (i + 1 >= text.length) return undefined;
      word = (word ?? '') + text[++i];
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) return undefined;
  if (word !== undefined) out.push(word);
  return out;
}
