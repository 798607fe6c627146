/**
 * The SSH wire encoding (RFC 4251 §5) as far as host keys, certificates and the first packets of a
 * key exchange need it. The reader throws WireError on truncated or oversized input, so every parser
 * above it turns a malformed blob into one clear reason instead of reading past its end.
 */
export class WireError extends Error {}

export class WireReader {
  #pos = 0;
  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.#pos;
  }
  get done(): boolean {
    return this.#pos === this.buf.length;
  }

  #take(n: number, what: string): Buffer {
    if (n < 0 || this.#pos + n > this.buf.length) throw new WireError(`truncated ${what}`);
    const out = this.buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  byte(what = 'byte'): number {
    return this.#take(1, what)[0]!;
  }
  uint32(what = 'uint32'): number {
    return this.#take(4, what).readUInt32BE(0);
  }
  uint64(what = 'uint64'): bigint {
    return this.#take(8, what).readBigUInt64BE(0);
  }
  bytes(n: number, what = 'bytes'): Buffer {
    return this.#take(n, what);
  }
  /** A length-prefixed byte string. */
  string(what = 'string'): Buffer {
    return this.#take(this.uint32(`${what} length`), what);
  }
  /** A length-prefixed string that must be printable ASCII (algorithm and key type names, principals). */
  text(what = 'name'): string {
    const raw = this.string(what);
    if (!/^[\x20-\x7e]*$/.test(raw.toString('latin1'))) throw new WireError(`${what} is not printable ASCII`);
    return raw.toString('latin1');
  }
  /** A name-list (comma-separated names in one string). */
  nameList(what = 'name-list'): string[] {
    const s = this.text(what);
    return s ? s.split(',') : [];
  }
  boolean(what = 'boolean'): boolean {
    return this.byte(what) !== 0;
  }
  rest(): Buffer {
    return this.#take(this.buf.length - this.#pos, 'rest');
  }
}

/** Concatenates SSH wire values. */
export class WireWriter {
  readonly #parts: Buffer[] = [];

  byte(b: number): this {
    this.#parts.push(Buffer.from([b]));
    return this;
  }
  uint32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n, 0);
    this.#parts.push(b);
    return this;
  }
  raw(b: Buffer): this {
    this.#parts.push(b);
    return this;
  }
  string(s: Buffer | string): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
    return this.uint32(b.length).raw(b);
  }
  nameList(names: readonly string[]): this {
    return this.string(names.join(','));
  }
  boolean(v: boolean): this {
    return this.byte(v ? 1 : 0);
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.#parts);
  }
}

/** The magnitude of an mpint (RFC 4251: two's complement, big-endian) without its sign byte. */
export function mpintMagnitude(mpint: Buffer, what: string): Buffer {
  if (mpint.length && mpint[0]! & 0x80) throw new WireError(`${what} is negative`);
  let i = 0;
  while (i < mpint.length - 1 && mpint[i] === 0) i++;
  return mpint.subarray(i);
}
