/**
 * Secret values: wrapped so they cannot be printed by accident, and registered with
 * the process-wide masker so any string that reaches an output channel is scrubbed.
 */
const MASK = '********';
/** Each registered secret → the forms the masker looks for (encodedForms). */
const registered = new Map<string, string[]>();

export class Secret {
  readonly #value: string;
  constructor(
    readonly name: string,
    value: string,
  ) {
    this.#value = value;
    registerSecret(value);
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return MASK;
  }
  toJSON(): string {
    return MASK;
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Secret(${this.name})`;
  }
}

export function registerSecret(value: string): void {
  if (!value || registered.has(value)) return;
  registered.set(value, encodedForms(value));
  forms = undefined;
  // A value under 4 characters (a short sudo password) would mask ordinary text everywhere if it
  // were looked for anywhere; it is masked where it stands as a token of its own (not inside a word).
  if (value.length < 4) shortTokens = undefined;
}

/** Secrets shorter than 4 characters, masked as whole tokens only; rebuilt when a secret is added. */
let shortTokens: RegExp | null | undefined;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
function shortTokenPattern(): RegExp | null {
  const short = [...registered.keys()].filter((v) => v.length < 4).sort((a, b) => b.length - a.length);
  if (short.length === 0) return null;
  return new RegExp(`(?<![\\p{L}\\p{N}_])(?:${short.map(escapeRegExp).join('|')})(?![\\p{L}\\p{N}_])`, 'gu');
}

/** Every registered secret in every form it is looked for, longest first; rebuilt when a secret is added. */
let forms: string[] | undefined;

const BASE64_URL = (b64: string) => b64.replace(/\+/g, '-').replace(/\//g, '_');

/**
 * The base64 characters that depend on the secret's bytes alone, for the secret starting at a
 * byte offset of 0, 1 or 2 (mod 3) of a longer encoded text: whatever surrounds it, these appear.
 * (At most the first and last character of its stretch mix in neighbouring bits: 6 bits each.)
 */
function base64Cores(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const b64 = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const firstBit = offset * 8;
    const endBit = (offset + bytes.length) * 8;
    const from = Math.ceil(firstBit / 6);
    const to = Math.floor(endBit / 6); // exclusive: character i covers bits [6i, 6i+6)
    const core = b64.slice(from, to);
    // Too short a stretch of base64 would match ordinary text.
    if (core.length >= 8) out.push(core, BASE64_URL(core));
  }
  return out;
}

/** The inside of a JSON (and JavaScript) string literal holding s. */
const jsonInner = (s: string) => JSON.stringify(s).slice(1, -1);

/**
 * A secret as filters, encoders and escapers write it: the masker looks for each of these, and for
 * each of them JSON-escaped once more (a value quoted by an error message, a JSON document in JSON).
 */
export function encodedForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const json = jsonInner(secret);
  const percentLower = (s: string) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  const uri = encodeURIComponent(secret);
  const form = new URLSearchParams([['', secret]]).toString().slice(1);
  const forms = [
    secret,
    // JSON and JavaScript string escaping (| dump, JSON.stringify), also with non-ASCII as \uXXXX and "/" as "\/".
    json,
    json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    json.replace(/\//g, '\\/'),
    // URL encoding: encodeURIComponent (| urlencode), form encoding (spaces as +), either hex case; encodeURI.
    uri,
    percentLower(uri),
    form,
    percentLower(form),
    encodeURI(secret),
    // Shell: inside '…' (quote()), inside "…".
    secret.replace(/'/g, `'\\''`),
    secret.replace(/[\\"$`]/g, '\\$&'),
    // HTML (| escape).
    secret.replace(/[&"'<>\\]/g, (c) => ({ '&': '&amp;', '"': '&quot;', "'": '&#39;', '<': '&lt;', '>': '&gt;', '\\': '&#92;' })[c]!),
    // Hex of the UTF-8 bytes, both cases.
    bytes.toString('hex'),
    bytes.toString('hex').toUpperCase(),
    // Base64 and base64url, at each of the three byte alignments inside a longer text.
    ...base64Cores(bytes),
  ];
  return [...new Set([...forms, ...forms.map(jsonInner)])].filter((f) => f.length >= 4);
}

/** Replace every registered secret value, in any of its encoded forms, in s with the mask. */
export function mask(s: string): string {
  if (registered.size === 0 || !s) return s;
  forms ??= [...new Set([...registered.values()].flat())].sort((a, b) => b.length - a.length);
  let out = s;
  for (const v of forms) {
    if (out.includes(v)) out = out.split(v).join(MASK);
  }
  if (shortTokens === undefined) shortTokens = shortTokenPattern();
  return shortTokens ? out.replace(shortTokens, MASK) : out;
}

export function maskDeep<T>(value: T): T {
  if (typeof value === 'string') return mask(value) as T;
  if (value instanceof Secret) return MASK as T;
  if (Array.isArray(value)) return value.map(maskDeep) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskDeep(v);
    return out as T;
  }
  return value;
}

export function revealIfSecret(v: unknown): unknown {
  return v instanceof Secret ? v.reveal() : v;
}

export const SECRET_MASK = MASK;

/** For tests. */
export function clearRegisteredSecrets(): void {
  registered.clear();
  forms = undefined;
  shortTokens = undefined;
}
