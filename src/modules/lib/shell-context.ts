import { quote, shellJoin } from '../../util/quote.js';

/**
 * Where a value lands in a POSIX sh command line, and how it is escaped there. A value is only
 * ever placed where its escaping is known to keep it one piece of data: an unquoted word (quoted
 * whole), inside '…' (each ' closed, escaped, reopened), inside "…" (\ " $ ` escaped), or in a
 * comment (quoted, newlines flattened so it cannot end the comment). Anything else is refused.
 */
export type ShellContext = 'word' | 'single' | 'double' | 'comment';

/** Escape a value for where it stands. A list in an unquoted word becomes one quoted word per item. */
export function escapeForShell(context: ShellContext, value: string | ReadonlyArray<string>): string {
  const text = typeof value === 'string' ? value : value.join(' ');
  switch (context) {
    case 'word':
      return typeof value === 'string' ? quote(value) : shellJoin([...value]);
    case 'single':
      return text.replace(/'/g, `'\\''`);
    case 'double':
      return text.replace(/[\\"$`]/g, '\\$&');
    case 'comment':
      // A newline would end the comment and start a command.
      return quote(text).replace(/[\r\n]/g, ' ');
  }
}

/** Shell syntax nested at a point of the command line, innermost last. */
type Frame = 'top' | 'paren' | 'subst' | 'single' | 'double' | 'backtick' | 'brace' | 'comment';

const WORD_FRAMES: ReadonlySet<Frame> = new Set(['top', 'paren', 'subst']);

/**
 * Follows the literal text of a command line, character by character, to know the quoting context
 * at each point where a template puts a value. It knows POSIX sh quoting, $( ), ( ), ${ }, ` `,
 * comments; after a here-document, `case`, or bash's $'…' it stops placing values (refused), since
 * their escaping depends on more than this scanner tracks.
 */
export class ShellScanner {
  private frames: Frame[] = ['top'];
  /** The previous character was a backslash that escapes the next one. */
  private escaped = false;
  private atWordStart = true;
  private word = '';
  /** Once set, no value may be placed any more: the construct that made the context unknowable. */
  private unsupported: string | undefined;

  clone(): ShellScanner {
    const c = new ShellScanner();
    c.frames = [...this.frames];
    c.escaped = this.escaped;
    c.atWordStart = this.atWordStart;
    c.word = this.word;
    c.unsupported = this.unsupported;
    return c;
  }

  /** What must be equal where two paths of a template meet again (after {% if %}, around {% for %}). */
  key(): string {
    return `${this.frames.join('/')}|${this.escaped}|${this.unsupported ?? ''}`;
  }

  private get top(): Frame {
    return this.frames[this.frames.length - 1]!;
  }

  private push(f: Frame): void {
    this.frames.push(f);
  }

  private pop(): void {
    if (this.frames.length > 1) this.frames.pop();
  }

  private endWord(): void {
    if (this.word === 'case') this.unsupported ??= 'a case … esac';
    this.word = '';
    this.atWordStart = true;
  }

  /** Literal text of the command line. */
  feed(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      const next = text[i + 1];
      if (this.escaped) {
        this.escaped = false;
        if (WORD_FRAMES.has(this.top)) {
          this.atWordStart = false;
          this.word += c;
        }
        continue;
      }
      switch (this.top) {
        case 'single':
          if (c === "'") this.pop();
          continue;
        case 'comment':
          if (c === '\n') {
            this.pop();
            this.endWord();
          }
          continue;
        case 'backtick':
          if (c === '\\') this.escaped = true;
          else if (c === '`') this.pop();
          continue;
        case 'double':
        case 'brace':
          if (c === '\\') this.escaped = true;
          else if (this.top === 'double' && c === '"') this.pop();
          else if (this.top === 'brace' && c === '}') this.pop();
          else if (this.top === 'brace' && c === "'") this.push('single');
          else if (this.top === 'brace' && c === '"') this.push('double');
          else if (c === '`') this.push('backtick');
          else if (c === '$' && next === '(') {
            this.push('subst');
            this.word = '';
            this.atWordStart = true;
            i++;
          } else if (c === '$' && next === '{') {
            this.push('brace');
            i++;
          }
          continue;
        default:
          this.feedWord(c, next, () => i++);
      }
    }
  }

  /** One character in unquoted shell (top level, ( ), $( )). */
  private feedWord(c: string, next: string | undefined, skipNext: () => void): void {
    if (c === '\\') {
      this.escaped = true;
      return;
    }
    if (c === '#' && this.atWordStart) {
      this.push('comment');
      return;
    }
    if (c === '$' && next === "'") this.unsupported ??= "bash's $'…' quoting";
    if (c === '<' && next === '<') this.unsupported ??= 'a here-document (<<)';
    if (c === "'") this.push('single');
    else if (c === '"') this.push('double');
    else if (c === '`') this.push('backtick');
    else if (c === '$' && next === '(') {
      this.push('subst');
      this.endWord();
      skipNext();
      return;
    } else if (c === '$' && next === '{') {
      this.push('brace');
      skipNext();
    } else if (c === '(') {
      this.push('paren');
      this.endWord();
      return;
    } else if (c === ')') {
      this.endWord();
      if (this.top !== 'top') this.pop();
      return;
    } else if (/[\s;&|<>]/.test(c)) {
      this.endWord();
      return;
    } else this.word += c;
    this.atWordStart = false;
  }

  /** The context a value placed here gets, or why no value may be placed here. */
  context(): ShellContext | { refused: string } {
    if (this.unsupported) return { refused: `after ${this.unsupported}` };
    if (this.escaped) return { refused: 'right after a backslash' };
    const top = this.top;
    if (WORD_FRAMES.has(top)) return 'word';
    if (top === 'single' || top === 'double' || top === 'comment') return top;
    return { refused: top === 'backtick' ? 'inside backquotes (use $( … ))' : 'inside ${ … }' };
  }

  /** A value was placed: it is part of the current word. */
  placedValue(): void {
    if (WORD_FRAMES.has(this.top)) {
      this.atWordStart = false;
      this.word += '\0';
    }
  }
}
