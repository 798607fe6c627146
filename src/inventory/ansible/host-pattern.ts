/*
 * A host entry of an Ansible inventory: `name`, `name:port`, `[ipv6]:port`, with ranges
 * `web[01:03].example.com` (numeric, zero-padded, with an optional step `[1:9:2]`; alphabetic `[a:f]`),
 * as Ansible's parse_address and expand_hostname_range read them.
 */

const NUMERIC_RANGE = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const HEX_RANGE = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const ALNUM_RANGE = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const IPV4_PART = String.raw`(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
const IPV6_PART = String.raw`(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const LABEL = String.raw`(?:[\w]|${ALNUM_RANGE})(?:[\w_-]|${ALNUM_RANGE})*(?<![_-])`;

const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/;
const IPV4 = new RegExp(String.raw`^(?:${IPV4_PART}\.){3}${IPV4_PART}$`, 'i');
const IPV6 = new RegExp(
  '^(?:' +
    [
      String.raw`(?:${IPV6_PART}:){7}${IPV6_PART}`,
      String.raw`(?:${IPV6_PART}:){1,6}:`,
      String.raw`(?:${IPV6_PART}:)(?::${IPV6_PART}){1,6}`,
      String.raw`(?:${IPV6_PART}:){2}(?::${IPV6_PART}){1,5}`,
      String.raw`(?:${IPV6_PART}:){3}(?::${IPV6_PART}){1,4}`,
      String.raw`(?:${IPV6_PART}:){4}(?::${IPV6_PART}){1,3}`,
      String.raw`(?:${IPV6_PART}:){5}(?::${IPV6_PART}){1,2}`,
      String.raw`(?:${IPV6_PART}:){6}(?::${IPV6_PART})`,
      String.raw`:(?::${IPV6_PART}){1,6}`,
      String.raw`${IPV6_PART}?::`,
      String.raw`(?:0:){6}(?:${IPV6_PART}\.){3}${IPV6_PART}`,
      String.raw`::(?:ffff:)?(?:${IPV6_PART}\.){3}${IPV6_PART}`,
      String.raw`(?:0:){5}ffff:(?:${IPV6_PART}\.){3}${IPV6_PART}`,
    ].join('|') +
    ')$',
  'i',
);
const HOSTNAME = new RegExp(String.raw`^${LABEL}(?:\.${LABEL})*$`, 'iu');

export class HostPatternError extends Error {}

/** Host names and port of one inventory entry. */
export function expandHostPattern(entry: string): { hosts: string[]; port?: number } {
  let address = entry;
  let port: number | undefined;
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = re.exec(address);
    if (m) {
      address = m[1]!;
      port = Number(m[2]);
    }
  }
  // Ansible goes on with the text as it is when it is not an address it knows (then no port).
  if (!IPV4.test(address) && !IPV6.test(address) && !HOSTNAME.test(address)) {
    address = entry;
    port = undefined;
  }
  if (entry.trim().endsWith(':') && port === undefined) throw new HostPatternError(`"${entry}": a host entry may not end with ":" (it is reserved for a port)`);
  return { hosts: address.includes('[') ? expandRanges(address) : [address], port };
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function expandRanges(line: string): string[] {
  const open = line.indexOf('[');
  const close = line.indexOf(']', open);
  if (close < 0) throw new HostPatternError(`"${line}": a range has no closing "]"`);
  const head = line.slice(0, open);
  const tail = line.slice(close + 1);
  const bounds = line.slice(open + 1, close).split(':');
  if (bounds.length !== 2 && bounds.length !== 3) throw new HostPatternError(`"${line}": a host range is [begin:end] or [begin:end:step]`);
  const beg = bounds[0] || '0';
  const end = bounds[1]!;
  const step = bounds.length === 3 ? Number(bounds[2]) : 1;
  if (!end) throw new HostPatternError(`"${line}": a host range needs an end`);
  if (!Number.isInteger(step) || step < 1) throw new HostPatternError(`"${line}": a host range's step is a whole number of 1 or more`);
  let seq: string[];
  if (beg.length === 1 && end.length === 1 && LETTERS.includes(beg) && LETTERS.includes(end)) {
    const [a, b] = [LETTERS.indexOf(beg), LETTERS.indexOf(end)];
    if (a > b) throw new HostPatternError(`"${line}": a host range's begin comes after its end`);
    seq = [];
    for (let i = a; i <= b; i += step) seq.push(LETTERS[i]!);
  } else {
    if (!/^\d+$/.test(beg) || !/^\d+$/.test(end)) throw new HostPatternError(`"${line}": a host range is numbers or single letters`);
    const width = beg.length > 1 && beg.startsWith('0') ? beg.length : 0;
    if (width && width !== end.length) throw new HostPatternError(`"${line}": a zero-padded host range's begin and end have the same width`);
    seq = [];
    const [a, b] = [Number(beg), Number(end)];
    if (b - a > 100_000) throw new HostPatternError(`"${line}": a host range of more than 100000 hosts`);
    for (let i = a; i <= b; i += step) seq.push(width ? String(i).padStart(width, '0') : String(i));
  }
  return seq.flatMap((part) => {
    const name = head + part + tail;
    return name.includes('[') ? expandRanges(name) : [name];
  });
}
