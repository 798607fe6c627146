/**
 * Var checks for roles not converted to a vars schema yet (common): each returns problems as
 * "var: what is wrong". Converted roles use the schema kinds of vars.ts (bool, oneOf…), which say the same.
 */

export function checkBoolean(vars: Record<string, unknown>, name: string): string[] {
  return typeof vars[name] === 'boolean' ? [] : [`${name}: true or false, got ${JSON.stringify(vars[name])}`];
}

export function checkOneOf(vars: Record<string, unknown>, name: string, allowed: readonly string[]): string[] {
  const v = vars[name];
  return typeof v === 'string' && allowed.includes(v) ? [] : [`${name}: one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`];
}
