/**
 * Host name patterns of known_hosts, with OpenSSH's semantics (match.c, hostfile.c), written as
 * plain loops: no regular expression is ever built from the file's text, so no line can make a
 * pattern that fails to compile or that takes exponential time.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * `*` (any run, also empty) and `?` (exactly one character); everything else, `[`, `]`, `.` and `\`
 * included, is itself. Iterative with one backtrack point: linear in practice, quadratic at worst.
 */
export function matchPattern(name: string, pattern: string): boolean {
  let n = 0;
  let p = 0;
  let starP = -1;
  let starN = 0;
  while (n < name.length) {
    if (p < pattern.length && (pattern[p] === '?' || (pattern[p] !== '*' && pattern[p] === name[n]))) {
      n++;
      p++;
    } else if (p < pattern.length && pattern[p] === '*') {
      starP = p++;
      starN = n;
    } else if (starP >= 0) {
      p = starP + 1;
      n = ++starN;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** OpenSSH gives up on (does not match) a sub-pattern this long or longer (match.c's 1024-byte buffer). */
const MAX_SUBPATTERN = 1023;

/**
 * A comma-separated list of patterns, each may start with `!`: -1 when a negated pattern matches
 * (that wins over any positive one), 1 when a positive pattern matches, 0 when none does.
 * Host name patterns are compared in lower case, as OpenSSH's match_hostname does.
 */
export function matchPatternList(name: string, list: string): -1 | 0 | 1 {
  const host = asciiLower(name);
  let positive = false;
  for (let raw of list.split(',')) {
    const negated = raw.startsWith('!');
    if (negated) raw = raw.slice(1);
    if (raw.length >= MAX_SUBPATTERN) return 0;
    if (matchPattern(host, asciiLower(raw))) {
      if (negated) return -1;
      positive = true;
    }
  }
  return positive ? 1 : 0;
}

/** OpenSSH lowercases with tolower() in the C locale: ASCII letters only. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

const HASH_MAGIC = '|1|';
const SHA1_BYTES = 20;

/** Why a hashed host field cannot be read, or undefined when it can. */
export function hashedFieldProblem(field: string): string | undefined {
  return parseHashed(field) ? undefined : `hashed host name "${field.slice(0, 32)}" is not |1|salt|hash with a 20-byte salt and hash`;
}

function parseHashed(field: string): { salt: Buffer; hash: Buffer } | undefined {
  if (!field.startsWith(HASH_MAGIC)) return undefined;
  const rest = field.slice(HASH_MAGIC.length);
  const bar = rest.indexOf('|');
  if (bar <= 0) return undefined;
  const salt = strictBase64(rest.slice(0, bar));
  const hash = strictBase64(rest.slice(bar + 1));
  if (salt?.length !== SHA1_BYTES || hash?.length !== SHA1_BYTES) return undefined;
  return { salt, hash };
}

function strictBase64(s: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  return Buffer.from(s, 'base64');
}

/**
 * A hashed entry (`|1|base64 salt|base64 HMAC-SHA1(salt, name)`, as `ssh-keygen -H` and
 * HashKnownHosts write it) stands for one exact name: the whole host field is the hash, no list.
 * Undefined when the field cannot be read.
 */
export function matchHashed(name: string, field: string): boolean | undefined {
  const h = parseHashed(field);
  if (!h) return undefined;
  const mac = createHmac('sha1', h.salt).update(name).digest();
  return timingSafeEqual(mac, h.hash);
}

/** A hashed host field for `name` with a fresh salt (what HashKnownHosts writes). */
export function hashHostName(name: string, salt: Buffer): string {
  return `${HASH_MAGIC}${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

/**
 * Whether a known_hosts host field names `name`: hashed fields by their HMAC, others as a pattern
 * list where a negation excludes. Undefined when the field cannot be read (a broken hash).
 */
export function hostFieldMatches(name: string, field: string): boolean | undefined {
  if (field.startsWith('|')) return matchHashed(name, field);
  return matchPatternList(name, field) === 1;
}
