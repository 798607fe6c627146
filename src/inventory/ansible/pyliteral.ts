/**
 * Python's ast.literal_eval, as Ansible's INI inventory reads a value (`_parse_value`): numbers,
 * quoted strings, True/False/None, lists, tuples, sets and dicts of those. Anything else (a bare
 * word, `yes`, a path) is not a literal and stays the string it was. Tuples and sets become lists.
 */
export function parsePythonLiteral(text: string): { ok: true; value: unknown } | { ok: false } {
  const p = new LiteralParser(text);
  try {
    p.skipSpace();
    const value = p.value();
    p.skipSpace();
    if (!p.atEnd()) return { ok: false };
    return { ok: true, value };
  } catch (err) {
    if (err instanceof NotALiteral) return { ok: false };
    throw err;
  }
}

class NotALiteral extends Error {}

const ESCAPES: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\n': '' };

class LiteralParser {
  private i = 0;
  constructor(private readonly s: string) {}

  atEnd(): boolean {
    return this.i >= this.s.length;
  }

  skipSpace(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
  }

  private fail(): never {
    throw new NotALiteral();
  }

  private expect(c: string): void {
    if (this.s[this.i] !== c) this.fail();
    this.i++;
  }

  value(): unknown {
    const c = this.s[this.i];
    if (c === undefined) this.fail();
    if (c === '[') return this.sequence('[', ']');
    if (c === '(') return this.sequence('(', ')');
    if (c === '{') return this.braces();
    if (c === '-' || c === '+') {
      this.i++;
      this.skipSpace();
      const n = this.number();
      return c === '-' ? -n : n;
    }
    if (/[0-9.]/.test(c)) return this.number();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i))?.[0];
    if (word !== undefined) {
      const quoteAfter = this.s[this.i + word.length];
      if (/^[rRbBuU]{1,2}$/.test(word) && (quoteAfter === '"' || quoteAfter === "'")) return this.strings();
      this.i += word.length;
      if (word === 'True') return true;
      if (word === 'False') return false;
      if (word === 'None') return null;
      this.fail();
    }
    if (c === '"' || c === "'") return this.strings();
    this.fail();
  }

  /** One or more adjacent string literals ("a" "b" is "ab", as in Python). */
  private strings(): string {
    let out = this.string();
    for (;;) {
      const save = this.i;
      this.skipSpace();
      const c = this.s[this.i];
      if (c === '"' || c === "'" || (/[rRbBuU]/.test(c ?? '') && /["']/.test(this.s[this.i + 1] ?? '')) || (/[rRbBuU]{2}/.test(this.s.slice(this.i, this.i + 2)) && /["']/.test(this.s[this.i + 2] ?? ''))) {
        out += this.string();
      } else {
        this.i = save;
        return out;
      }
    }
  }

  private string(): string {
    const prefix = /^[rRbBuU]{0,2}/.exec(this.s.slice(this.i))![0];
    if (/[uU]/.test(prefix) && prefix.length > 1) this.fail();
    this.i += prefix.length;
    const raw = /[rR]/.test(prefix);
    const q = this.s[this.i]!;
    const triple = this.s.slice(this.i, this.i + 3) === q.repeat(3);
    const close = triple ? q.repeat(3) : q;
    this.i += close.length;
    let out = '';
    for (;;) {
      if (this.i >= this.s.length) this.fail();
      if (this.s.startsWith(close, this.i)) {
        this.i += close.length;
        return out;
      }
      const c = this.s[this.i]!;
      if (c === '\n' && !triple) this.fail();
      if (c === '\\') {
        const n = this.s[this.i + 1];
        if (n === undefined) this.fail();
        if (raw) {
          out += c + n;
          this.i += 2;
          continue;
        }
        if (n in ESCAPES) {
          out += ESCAPES[n];
          this.i += 2;
        } else if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(this.s.slice(this.i + 2, this.i + 4))) {
          out += String.fromCharCode(parseInt(this.s.slice(this.i + 2, this.i + 4), 16));
          this.i += 4;
        } else if ((n === 'u' && /^[0-9a-fA-F]{4}$/.test(this.s.slice(this.i + 2, this.i + 6))) || (n === 'U' && /^[0-9a-fA-F]{8}$/.test(this.s.slice(this.i + 2, this.i + 10)))) {
          const len = n === 'u' ? 4 : 8;
          out += String.fromCodePoint(parseInt(this.s.slice(this.i + 2, this.i + 2 + len), 16));
          this.i += 2 + len;
        } else if (/[0-7]/.test(n)) {
          const oct = /^[0-7]{1,3}/.exec(this.s.slice(this.i + 1))![0];
          out += String.fromCharCode(parseInt(oct, 8));
          this.i += 1 + oct.length;
        } else {
          // Python keeps an unknown escape as it is.
          out += c + n;
          this.i += 2;
        }
        continue;
      }
      out += c;
      this.i++;
    }
  }

  private number(): number {
    const rest = this.s.slice(this.i);
    const m =
      /^0[xX](?:_?[0-9a-fA-F])+/.exec(rest) ??
      /^0[oO](?:_?[0-7])+/.exec(rest) ??
      /^0[bB](?:_?[01])+/.exec(rest) ??
      /^(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?/.exec(rest);
    if (!m || m[0] === '' || m[0] === '.') this.fail();
    const text = m[0].replace(/_/g, '');
    // A complex number (1j) or a name glued to a number is not something we can hold.
    if (/^[A-Za-z0-9_]/.test(rest.slice(m[0].length))) this.fail();
    this.i += m[0].length;
    if (/^0[xX]/.test(text)) return parseInt(text.slice(2), 16);
    if (/^0[oO]/.test(text)) return parseInt(text.slice(2), 8);
    if (/^0[bB]/.test(text)) return parseInt(text.slice(2), 2);
    // Python refuses leading zeros in a decimal integer ("010").
    if (/^0\d/.test(text) && !/[.eE]/.test(text) && !/^0+$/.test(text)) this.fail();
    return Number(text);
  }

  private sequence(open: string, close: string): unknown[] {
    this.expect(open);
    const out: unknown[] = [];
    for (;;) {
      this.skipSpace();
      if (this.s[this.i] === close) {
        this.i++;
        return out;
      }
      out.push(this.value());
      this.skipSpace();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== close) this.fail();
      else if (open === '(' && out.length === 1 && this.s[this.i - 1] !== ',') {
        // "(x)" is x in parentheses, not a tuple.
        this.i++;
        return out[0] as unknown[];
      }
    }
  }

  private braces(): unknown {
    this.expect('{');
    this.skipSpace();
    if (this.s[this.i] === '}') {
      this.i++;
      return {};
    }
    const first = this.value();
    this.skipSpace();
    if (this.s[this.i] === ':') {
      const out: Record<string, unknown> = {};
      let key = first;
      for (;;) {
        this.expect(':');
        this.skipSpace();
        out[String(key)] = this.value();
        this.skipSpace();
        if (this.closesBraces()) return out;
        key = this.value();
        this.skipSpace();
      }
    }
    // A set: a list here.
    const out = [first];
    for (;;) {
      if (this.closesBraces()) return out;
      out.push(this.value());
      this.skipSpace();
    }
  }

  /** After an entry of a dict or set: its comma, and whether the braces close there (a trailing comma is allowed, a missing one is not). */
  private closesBraces(): boolean {
    if (this.s[this.i] === ',') {
      this.i++;
      this.skipSpace();
    } else if (this.s[this.i] !== '}') {
      this.fail();
    }
    if (this.s[this.i] !== '}') return false;
    this.i++;
    return true;
  }
}
