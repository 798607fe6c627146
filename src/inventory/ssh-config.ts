import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InventoryError } from '../util/errors.js';

/*
 * ~/.ssh/config as OpenSSH reads it (readconf.c), for the options that decide where and as whom a
 * connection goes: HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump (and ProxyCommand
 * of the `ssh -W %h:%p JUMP` form), UserKnownHostsFile.
 * - `Host` patterns (`*`, `?`, `!negation`) are matched against the host name as given (case
 *   matters, as for ssh 9.2); a block applies when a pattern matches and no negated one does. Lines
 *   before any Host apply to all. HostName (default: the name) is lowercased, as ssh does.
 * - The first value obtained for an option wins; IdentityFile accumulates.
 * - `Include` (globs; relative paths from ~/.ssh) is read in place; a Host line inside an included
 *   file lasts to its end. `Match` blocks are not read (a warning says so).
 * Tested against `ssh -G HOST -F FILE` (test/unit/inventory/ssh-config.test.ts).
 */

export interface SshHostConfig {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  identitiesOnly?: boolean;
  /** ProxyJump, or the jump of a `ssh -W %h:%p JUMP` ProxyCommand. */
  proxyJump?: string;
  /** The ProxyCommand as written, when it was the first of ProxyCommand and ProxyJump. */
  proxyCommand?: string;
  userKnownHostsFiles?: string[];
  /** Where each value came from (file:line), for messages. */
  from: Partial<Record<'hostName' | 'user' | 'port' | 'proxyJump' | 'userKnownHostsFiles' | 'identityFiles', string>>;
}

interface Line {
  file: string;
  line: number;
  key: string;
  args: string[];
}

/** Split a config line's arguments as OpenSSH's argv_split does: quotes, backslash escapes, # ends the line. */
export function splitSshArgs(text: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    if (text[i] === '#') break;
    let arg = '';
    let quote: string | undefined;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (!quote && /\s/.test(c)) break;
      if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === "'" || text[i + 1] === '\\' || (!quote && text[i + 1] === ' '))) {
        arg += text[++i];
      } else if (quote && c === quote) quote = undefined;
      else if (!quote && (c === '"' || c === "'")) quote = c;
      else arg += c;
    }
    if (quote) return undefined;
    out.push(arg);
  }
  return out;
}

function parseLines(file: string, text: string): Line[] {
  const out: Line[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/[\s\f]+$/, '');
    // The keyword: up to whitespace or one "=", as strdelim reads it; a quoted keyword is allowed.
    const m = /^\s*("?)([A-Za-z][A-Za-z0-9]*)\1(\s*=\s*|\s+|$)(.*)$/.exec(line);
    if (!m) {
      if (line.trim() === '' || line.trim().startsWith('#')) return;
      throw new InventoryError(`${file}:${i + 1}: ssh_config: cannot read this line`);
    }
    const args = splitSshArgs(m[4]!);
    if (!args) throw new InventoryError(`${file}:${i + 1}: ssh_config: ${m[2]}: unclosed quote`);
    out.push({ file, line: i + 1, key: m[2]!.toLowerCase(), args });
  });
  return out;
}

/** OpenSSH's match_pattern: `*` and `?` wildcards, the whole string. */
function matchPattern(s: string, pattern: string): boolean {
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$', 's');
  return re.test(s);
}

/** Whether a Host line's patterns select host. */
export function hostLineMatches(patterns: string[], host: string): boolean {
  let result = false;
  for (const p of patterns) {
    const negated = p.startsWith('!');
    if (matchPattern(host, negated ? p.slice(1) : p)) {
      if (negated) return false;
      result = true;
    }
  }
  return result;
}

const MAX_INCLUDE_DEPTH = 16;
const yes = (v: string | undefined) => v !== undefined && ['yes', 'true'].includes(v.toLowerCase());

/** `ProxyCommand ssh [opts] -W %h:%p DEST` → [user@]DEST[:port]; anything else is not a jump. */
export function jumpOfProxyCommand(args: string[]): string | undefined {
  if (args.length === 0 || path.basename(args[0]!) !== 'ssh') return undefined;
  let dest: string | undefined;
  let user: string | undefined;
  let port: string | undefined;
  let forward = false;
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '-W') forward = args[++i] === '%h:%p';
    else if (a === '-p') port = args[++i];
    else if (a === '-l') user = args[++i];
    else if (/^-[qvCT46]+$/.test(a)) continue;
    else if (a.startsWith('-')) return undefined; // an option that changes more than where to jump
    else if (dest === undefined) dest = a;
    else return undefined;
  }
  if (!forward || !dest) return undefined;
  const withUser = user && !dest.includes('@') ? `${user}@${dest}` : dest;
  return port ? `${withUser}:${port}` : withUser;
}

export class SshConfig {
  readonly #files = new Map<string, Line[]>();
  readonly #warned = new Set<string>();

  constructor(
    readonly file: string,
    private readonly home: string,
    private readonly warn: (message: string) => void,
  ) {}

  private lines(file: string): Line[] {
    let lines = this.#files.get(file);
    if (!lines) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InventoryError(`ssh_config ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      lines = parseLines(file, text);
      this.#files.set(file, lines);
    }
    return lines;
  }

  private warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.warn(message);
  }

  /** The files an Include line names: ~ and relative paths (from ~/.ssh) resolved, globs expanded, sorted. */
  private includes(pattern: string): string[] {
    let p = pattern.startsWith('~/') ? path.join(this.home, pattern.slice(2)) : pattern;
    if (!path.isAbsolute(p)) p = path.join(this.home, '.ssh', p);
    if (!/[*?[]/.test(p)) return existsSync(p) ? [p] : [];
    // Globs in the last component only (the common case: config.d/*).
    const dir = path.dirname(p);
    if (/[*?[]/.test(dir)) {
      this.warnOnce(`glob:${pattern}`, `ssh_config: Include ${pattern}: wildcards in folder names are not read`);
      return [];
    }
    if (!existsSync(dir)) return [];
    const re = new RegExp('^' + path.basename(p).replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]') + '$');
    return readdirSync(dir)
      .filter((f) => !f.startsWith('.') || path.basename(p).startsWith('.'))
      .filter((f) => re.test(f))
      .sort()
      .map((f) => path.join(dir, f))
      .filter((f) => statSync(f).isFile());
  }

  /** The options for a host alias (as given: an inventory address), as `ssh -G` would print them. */
  lookup(alias: string): SshHostConfig {
    const host = alias;
    const out: SshHostConfig = { identityFiles: [], from: {} };
    let proxyDecided = false;
    const apply = (l: Line) => {
      const at = `${l.file}:${l.line}`;
      const arg = l.args[0];
      if (arg === undefined) throw new InventoryError(`${at}: ssh_config: ${l.key}: missing argument`);
      switch (l.key) {
        case 'hostname':
          if (out.hostName === undefined) [out.hostName, out.from.hostName] = [arg.replace(/%(%|h)/g, (_m, t: string) => (t === '%' ? '%' : host)).toLowerCase(), at];
          break;
        case 'user':
          if (out.user === undefined) [out.user, out.from.user] = [arg, at];
          break;
        case 'port':
          if (out.port === undefined) {
            const n = Number(arg);
            if (!/^\d+$/.test(arg) || n < 1 || n > 65535) throw new InventoryError(`${at}: ssh_config: Port: "${arg}" is not a port number`);
            [out.port, out.from.port] = [n, at];
          }
          break;
        case 'identityfile':
          out.identityFiles.push(arg);
          out.from.identityFiles ??= at;
          break;
        case 'identitiesonly':
          out.identitiesOnly ??= yes(arg);
          break;
        case 'userknownhostsfile':
          if (out.userKnownHostsFiles === undefined) [out.userKnownHostsFiles, out.from.userKnownHostsFiles] = [l.args, at];
          break;
        case 'proxyjump':
          if (!proxyDecided) {
            proxyDecided = true;
            if (arg.toLowerCase() !== 'none') [out.proxyJump, out.from.proxyJump] = [arg, at];
          }
          break;
        case 'proxycommand':
          if (!proxyDecided) {
            proxyDecided = true;
            if (arg.toLowerCase() === 'none') break;
            out.proxyCommand = l.args.join(' ');
            const jump = jumpOfProxyCommand(l.args);
            if (jump) [out.proxyJump, out.from.proxyJump] = [jump, at];
            else this.warnOnce(`proxycommand:${at}`, `${at}: ssh_config: ProxyCommand is not run by provision (only "ssh -W %h:%p HOST" is read, as a jump host); ignored`);
          }
          break;
      }
    };
    const walk = (file: string, active: boolean, depth: number): void => {
      for (const l of this.lines(file)) {
        if (l.key === 'host') active = hostLineMatches(l.args, host);
        else if (l.key === 'match') {
          this.warnOnce(`match:${l.file}:${l.line}`, `${l.file}:${l.line}: ssh_config: Match blocks are not read by provision; its options are ignored`);
          active = false;
        } else if (l.key === 'include') {
          if (!active) continue;
          if (depth >= MAX_INCLUDE_DEPTH) throw new InventoryError(`${l.file}:${l.line}: ssh_config: Include nested too deeply`);
          for (const pattern of l.args) for (const f of this.includes(pattern)) walk(f, active, depth + 1);
        } else if (active) apply(l);
      }
    };
    walk(this.file, true, 0);
    return out;
  }

  /** OpenSSH's %-tokens and ~ in IdentityFile and UserKnownHostsFile (a relative path is from the current folder, as for ssh). */
  expandPath(p: string, t: { host: string; hostName: string; port: number; user: string; localUser: string }): string {
    const expanded = p.replace(/%([%dhnpru])/g, (_m, k: string) => {
      switch (k) {
        case '%':
          return '%';
        case 'd':
          return this.home;
        case 'h':
          return t.hostName;
        case 'n':
          return t.host;
        case 'p':
          return String(t.port);
        case 'r':
          return t.user;
        case 'u':
          return t.localUser;
        default:
          return _m;
      }
    });
    if (expanded === '~') return this.home;
    if (expanded.startsWith('~/')) return path.join(this.home, expanded.slice(2));
    return path.resolve(expanded);
  }
}
