/**
 * POSIX shell quoting. Remote shells are often dash, so no bash-only syntax:
 * every value goes inside single quotes, and a single quote becomes '\''.
 */
export function quote(value: string | number): string {
  const s = String(value);
  if (s !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quote each argument and join them into one command line. */
export function shellJoin(args: Array<string | number>): string {
  return args.map(quote).join(' ');
}

/** Tagged template: `sh\`rm -f ${path}\`` quotes every interpolated value. */
export function sh(strings: TemplateStringsArray, ...values: Array<string | number | Array<string | number>>): string {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += Array.isArray(v) ? shellJoin(v) : quote(v);
    out += strings[i + 1] ?? '';
  });
  return out;
}
