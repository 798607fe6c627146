/**
 * Secret values: wrapped so they cannot be printed by accident, and registered with
 * the process-wide masker so any string that reaches an output channel is scrubbed.
 */
const MASK = '********';
const registered = new Set<string>();

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
  // Very short values would mask ordinary text everywhere; the inventory loader refuses them.
  if (value.length >= 4) registered.add(value);
}

/** Replace every registered secret value in s with the mask. */
export function mask(s: string): string {
  if (registered.size === 0 || !s) return s;
  let out = s;
  for (const v of [...registered].sort((a, b) => b.length - a.length)) {
    if (out.includes(v)) out = out.split(v).join(MASK);
  }
  return out;
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
}
