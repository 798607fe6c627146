/**
 * IPv4/IPv6 addresses and networks: parsing, ufw-style normalisation and containment.
 * Used by the ufw module to compare rules with the host's and to prove that the admin's
 * address can still reach SSH before a firewall is enabled.
 */

export interface Network {
  family: 4 | 6;
  /** The address as a 32- or 128-bit number, host bits as given. */
  bits: bigint;
  prefix: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;

function parseIPv4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0n;
  for (const part of parts) {
    // No leading zeros: "010" means 8 to some parsers and 10 to others.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const v = Number(part);
    if (v > 255) return undefined;
    n = (n << 8n) | BigInt(v);
  }
  return n;
}

function parseIPv6(s: string): bigint | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(s)) return undefined;
  let text = s;
  const groups: number[] = [];
  // An embedded IPv4 tail (::ffff:10.0.0.1) counts as two groups.
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (v4) {
    const n = parseIPv4(v4[2]!);
    if (n === undefined) return undefined;
    tail = [Number(n >> 16n), Number(n & 0xffffn)];
    text = v4[1]!.endsWith('::') ? v4[1]! : v4[1]!.slice(0, -1);
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    for (const g of h.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const given = head.length + rest.length + tail.length;
  if (halves.length === 2) {
    if (given > 7) return undefined;
    groups.push(...head, ...new Array<number>(8 - given).fill(0), ...rest, ...tail);
  } else {
    if (given !== 8) return undefined;
    groups.push(...head, ...tail);
  }
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** "10.0.0.0/8", "10.77.0.10", "2001:db8::/32", "any" (→ undefined means invalid; use isAnyAddress for any). */
export function parseNetwork(text: string): Network | undefined {
  const [addr = '', prefixText, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const family: 4 | 6 | undefined = addr.includes(':') ? 6 : addr.includes('.') ? 4 : undefined;
  if (!family) return undefined;
  const bits = family === 4 ? parseIPv4(addr) : parseIPv6(addr);
  if (bits === undefined) return undefined;
  let prefix: number = WIDTH[family];
  if (prefixText !== undefined) {
    if (family === 4 && prefixText.includes('.')) {
      // A dotted netmask (255.255.255.0): only contiguous masks have a prefix.
      const m = parseIPv4(prefixText);
      if (m === undefined) return undefined;
      const bin = m.toString(2).padStart(32, '0');
      if (!/^1*0*$/.test(bin)) return undefined;
      prefix = bin.includes('0') ? bin.indexOf('0') : 32;
    } else {
      if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
      prefix = Number(prefixText);
      if (prefix > WIDTH[family]) return undefined;
    }
  }
  return { family, bits, prefix };
}

export function isAnyAddress(text: string): boolean {
  const t = text.trim().toLowerCase();
  return t === 'any' || t === '0.0.0.0/0' || t === '::/0';
}

function mask(family: 4 | 6, prefix: number): bigint {
  const width = BigInt(WIDTH[family]);
  const all = (1n << width) - 1n;
  return prefix === 0 ? 0n : (all << (width - BigInt(prefix))) & all;
}

function formatIPv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

/** RFC 5952 form, as inet_ntop writes it: lower case, the longest run (≥2) of zero groups as "::". */
function formatIPv6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.len < 2) return hex.join(':');
  const left = hex.slice(0, best.start).join(':');
  const right = hex.slice(best.start + best.len).join(':');
  return `${left}::${right}`;
}

/**
 * The form ufw stores an address in, so rules compare equal to the host's: "any" for the
 * whole address space, no /32 (/128) on a single address, IPv4 host bits cleared, IPv6 canonical.
 */
export function normaliseAddress(text: string): string {
  if (isAnyAddress(text)) return 'any';
  const net = parseNetwork(text);
  if (!net) throw new Error(`"${text}" is not an IP address or network`);
  if (net.prefix === 0) return 'any';
  const width = WIDTH[net.family];
  if (net.family === 4) {
    const addr = formatIPv4(net.bits & mask(4, net.prefix));
    return net.prefix === width ? addr : `${addr}/${net.prefix}`;
  }
  // ufw keeps IPv6 host bits as given (inet_ntop of the address, then the prefix).
  const addr = formatIPv6(net.bits);
  return net.prefix === width ? addr : `${addr}/${net.prefix}`;
}

/** Does network `outer` contain every address of `inner`? "any" contains everything; families never mix. */
export function networkContains(outer: string, inner: string): boolean {
  if (isAnyAddress(outer)) return true;
  if (isAnyAddress(inner)) return false;
  const o = parseNetwork(outer);
  const i = parseNetwork(inner);
  if (!o || !i || o.family !== i.family) return false;
  if (o.prefix > i.prefix) return false;
  const m = mask(o.family, o.prefix);
  return (o.bits & m) === (i.bits & m);
}

/** Do two networks share any address? */
export function networksOverlap(a: string, b: string): boolean {
  if (isAnyAddress(a) || isAnyAddress(b)) return true;
  const x = parseNetwork(a);
  const y = parseNetwork(b);
  if (!x || !y || x.family !== y.family) return false;
  const m = mask(x.family, Math.min(x.prefix, y.prefix));
  return (x.bits & m) === (y.bits & m);
}
