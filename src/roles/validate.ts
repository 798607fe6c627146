import { z } from 'zod';
import { selectHosts, type Host, type Inventory } from '../inventory/index.js';
import { resolveLayer } from '../inventory/vars/layer.js';
import { PlaybookError } from '../util/errors.js';
import { expectedTypeName, fieldName } from '../util/yaml.js';
import { getRole } from './registry.js';
import type { BuiltinVars, RoleDef, RoleTarget, VarIssue } from './types.js';
import { defaultOf, shown } from './vars.js';
import { compareText } from '../util/compare-text.js';

/** What of a play the var checks read (the executor's Play has it). */
export interface PlayVars {
  name: string;
  hosts: string;
  roles: string[];
  vars: Record<string, unknown>;
  /** "file:line:col" of a var set in the play's `vars:`, when the playbook loader knows it. */
  varSource?(name: string): string | undefined;
}

/** Messages for the checks a schema did not word itself (zod's own say "Invalid input: …"). */
function plainMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      return iss.input === undefined ? 'required' : `expected ${expectedTypeName(iss.expected)}, got ${shown(iss.input)}`;
    case 'invalid_value':
      return `one of ${iss.values.map(String).join(', ')}, got ${shown(iss.input)}`;
    case 'too_small':
      return iss.origin === 'array' ? `at least ${String(iss.minimum)} item(s)` : `at least ${String(iss.minimum)}, got ${shown(iss.input)}`;
    case 'too_big':
      return iss.origin === 'array' ? `at most ${String(iss.maximum)} item(s)` : `at most ${String(iss.maximum)}, got ${shown(iss.input)}`;
    default:
      return undefined;
  }
}

/** The schema at a path inside a role's vars (through defaults, optionals and lists), for "allowed" keys. */
function schemaAt(schema: z.ZodType, path: ReadonlyArray<PropertyKey>): z.ZodType | undefined {
  let s: z.ZodType | undefined = schema;
  const unwrap = (x: z.ZodType): z.ZodType => {
    const def = x._zod.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    if ((def.type === 'default' || def.type === 'optional' || def.type === 'nullable' || def.type === 'prefault') && def.innerType) return unwrap(def.innerType);
    return x;
  };
  for (const key of path) {
    if (!s) return undefined;
    s = unwrap(s);
    const def = s._zod.def as { type: string; shape?: Record<string, z.ZodType>; element?: z.ZodType };
    if (def.type === 'object' && typeof key === 'string') s = def.shape?.[key];
    else if (def.type === 'array' && typeof key === 'number') s = def.element;
    else return undefined;
  }
  return s ? unwrap(s) : undefined;
}

/** zod's issues as var problems: an unknown key becomes one problem per key, with the keys allowed there. */
function toIssues(schema: z.ZodType, issues: readonly z.core.$ZodIssue[]): VarIssue[] {
  return issues.flatMap((iss): VarIssue[] => {
    const path = iss.path.map((k) => (typeof k === 'number' ? k : String(k)));
    if (iss.code === 'unrecognized_keys') {
      const shape = (schemaAt(schema, path)?._zod.def as { shape?: Record<string, unknown> } | undefined)?.shape;
      const allowed = shape ? ` (allowed: ${Object.keys(shape).join(', ')})` : '';
      return iss.keys.map((k) => ({ path: [...path, k], message: `unknown field${allowed}` }));
    }
    return [{ path, message: iss.message }];
  });
}

/** The role's defaults, for host rules when the vars do not parse. */
function withDefaults(role: RoleDef, raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(role.vars.shape)) out[k] = raw[k] !== undefined ? raw[k] : defaultOf(s as z.ZodType);
  return out;
}

/** Parse a role's own vars out of everything a host carries: the typed vars, or every problem at once. */
export function parseRoleVars(role: RoleDef, raw: Record<string, unknown>, host: RoleTarget): { vars?: Record<string, unknown>; issues: VarIssue[] } {
  const parsed = role.vars.safeParse(raw, { error: plainMessage });
  const issues = parsed.success ? [] : toIssues(role.vars, parsed.error.issues);
  const forRules = parsed.success ? parsed.data : withDefaults(role, raw);
  for (const rule of role.hostRules ?? []) issues.push(...rule.check(forRules, host));
  return issues.length ? { issues } : { vars: parsed.data as Record<string, unknown>, issues };
}

type Parsed = ReturnType<typeof parseRoleVars>;
/**
 * Parses per host, play and role: the run checks every role's vars before connecting, then expands
 * each play with them; a loaded inventory's hosts and a playbook's vars do not change in between.
 */
const parsed = new WeakMap<Host, WeakMap<object, Map<RoleDef, Parsed>>>();

/** A role's vars on a host: inventory vars (all < groups < host), then the play's vars, parsed by its schema. */
function parseFor(role: RoleDef, host: Host, play: Pick<PlayVars, 'vars' | 'varSource'>): Parsed {
  const byPlay = parsed.get(host) ?? parsed.set(host, new WeakMap()).get(host)!;
  const byRole = byPlay.get(play.vars) ?? byPlay.set(play.vars, new Map()).get(play.vars)!;
  let result = byRole.get(role);
  // Play vars that are templates are worked out for this host; one that reads what is not known before connecting stays as written.
  const rendered = () => resolveLayer({ host, layer: play.vars, at: (name) => play.varSource?.(name), pending: () => true });
  if (!result) byRole.set(role, (result = parseRoleVars(role, { ...host.vars, ...play.vars, ...rendered() }, host)));
  return result;
}

export class RoleVarsError extends PlaybookError {
  constructor(readonly problems: string[]) {
    super(problems.length === 1 ? problems[0]! : `${problems.length} problems with the role vars (no host was contacted):\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

/**
 * Vars as a role sees them on a host: its schema's parse of the inventory and play vars (defaults
 * filled in, its own keys only), plus the host's name and address.
 */
export function roleVars(roleName: string, host: Host, play: Pick<PlayVars, 'vars' | 'varSource'>): Record<string, unknown> & BuiltinVars {
  const role = getRole(roleName);
  if (!role) throw new PlaybookError(`unknown role "${roleName}"`);
  const { vars, issues } = parseFor(role, host, play);
  if (!vars) throw new RoleVarsError(issues.map((i) => `${i.path.length ? `${fieldName(i.path)}: ` : ''}${i.message} (host ${host.name}, role ${roleName})`));
  return { ...vars, inventory_hostname: host.name, ansible_host: host.address };
}

/** Problems in the order of the files they point into: by file, line and column (those without a line first). */
function inFileOrder(a: string, b: string): number {
  const at = (l: string) => /^(.*?)(?::(\d+):(\d+))?: /.exec(l)!;
  const [x, y] = [at(a), at(b)];
  return compareText(x[1]!, y[1]!) || Number(x[2] ?? 0) - Number(y[2] ?? 0) || Number(x[3] ?? 0) - Number(y[3] ?? 0);
}

const listed = (one: string, many: string, xs: Set<string>) => `${xs.size === 1 ? one : many} ${[...xs].join(', ')}`;

/**
 * Every role's vars on every selected host, before any connection: every problem of every role,
 * each with the file:line:col where the var was set (play vars, then host, group or top-level vars),
 * one line per problem however many hosts and roles share it. Throws RoleVarsError (exit 4).
 */
export function checkRoleVars(inventory: Inventory, playbook: { plays: PlayVars[] }, hosts: string[]): void {
  const found = new Map<string, { hosts: Set<string>; roles: Set<string> }>();
  for (const play of playbook.plays) {
    const targets = selectHosts(inventory, play.hosts).filter((h) => hosts.includes(h));
    for (const roleName of play.roles) {
      const role = getRole(roleName);
      if (!role) continue; // the playbook loader refuses unknown roles
      for (const name of targets) {
        const host = inventory.hosts.get(name)!;
        for (const issue of parseFor(role, host, play).issues) {
          const line = `${varWhere(inventory, play, name, issue.path)}: ${issue.path.length ? `${fieldName(issue.path)}: ` : ''}${issue.message}`;
          const seen = found.get(line) ?? found.set(line, { hosts: new Set(), roles: new Set() }).get(line)!;
          seen.hosts.add(name);
          seen.roles.add(roleName);
        }
      }
    }
  }
  if (found.size === 0) return;
  const lines = [...found].map(([line, { hosts: hs, roles }]) => `${line} (${listed('host', 'hosts', hs)}; ${listed('role', 'roles', roles)})`);
  throw new RoleVarsError(lines.sort(inFileOrder));
}

/** Where a var (a path inside it) was set for a host: the play's vars win over the inventory's; the file alone when nobody set it. */
export function varWhere(inventory: Inventory, play: PlayVars, host: string, path: ReadonlyArray<string | number>): string {
  const name = path[0];
  if (typeof name !== 'string') return inventory.file;
  if (Object.prototype.hasOwnProperty.call(play.vars, name)) return play.varSource?.(name) ?? `play "${play.name}"`;
  return inventory.varSource?.(host, name) ?? inventory.file;
}
