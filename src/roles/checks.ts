/**
 * Small var checks shared by role `validate` functions: each returns problems as "var: what is wrong",
 * so a role lists every bad var at once before any connection is made.
 */

export function checkPort(vars: Record<string, unknown>, name: string): string[] {
  const v = vars[name];
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535 ? [] : [`${name}: a TCP port (1-65535), got ${JSON.stringify(v)}`];
}

const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isHostname(s: string): boolean {
  return s.length <= 253 && s.split('.').length >= 2 && s.split('.').every((l) => LABEL.test(l));
}

export function checkHostname(vars: Record<string, unknown>, name: string): string[] {
  const v = vars[name];
  return typeof v === 'string' && isHostname(v) ? [] : [`${name}: a fully qualified DNS name like www.example.com, got ${JSON.stringify(v)}`];
}

export function checkBoolean(vars: Record<string, unknown>, name: string): string[] {
  return typeof vars[name] === 'boolean' ? [] : [`${name}: true or false, got ${JSON.stringify(vars[name])}`];
}

export function checkOneOf(vars: Record<string, unknown>, name: string, allowed: readonly string[]): string[] {
  const v = vars[name];
  return typeof v === 'string' && allowed.includes(v) ? [] : [`${name}: one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`];
}
