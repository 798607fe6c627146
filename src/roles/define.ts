import { z } from 'zod';
import type { Host } from '../inventory/index.js';
import type { Task } from '../modules/index.js';
import type { RoleContext, RoleDef, RoleVarsSchema, VarIssue } from './types.js';

/**
 * A role: its vars as a zod schema (each var with `.default()` and `.describe()`; rules across vars
 * with withRules), its tasks and handlers, which get `ctx.vars` typed from the schema.
 */
export function defineRole<S extends RoleVarsSchema>(def: RoleDef<S>): RoleDef<S> {
  return def;
}

/** A rule across vars: in words (for the documentation) and as a check returning what is wrong. */
export interface VarRule<V> {
  says: string;
  check(vars: V): VarIssue[];
}

/** "var: message" when `bad`, for rules: `problem(a === b, 'https_port', 'must differ from http_port')`. */
export function problemIf(bad: boolean, path: string | Array<string | number>, message: string): VarIssue[] {
  return bad ? [{ path: Array.isArray(path) ? path : [path], message }] : [];
}

/** Where a schema keeps its rules in words (zod metadata), for the documentation. */
export function rulesOf(schema: z.ZodType): string[] {
  return ((schema.meta() as { rules?: string[] } | undefined)?.rules ?? []).slice();
}

/**
 * A role's schema with its rules across vars, checked in the schema itself (superRefine). They run
 * even when a field is wrong, so every problem is listed at once: a rule's check must read the vars
 * it compares defensively (a value may be of the wrong type).
 */
export function withRules<S extends RoleVarsSchema>(schema: S, rules: Array<VarRule<z.output<S>>>): S {
  return schema
    .superRefine(
      (vars, ctx) => {
        for (const rule of rules) for (const i of rule.check(vars as z.output<S>)) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
      },
      { when: () => true },
    )
    .meta({ rules: [...rulesOf(schema), ...rules.map((r) => r.says)] }) as S;
}

/** The old shape of a role: defaults, and a check returning "var: what is wrong" lines. */
export interface LegacyRoleDef {
  name: string;
  description: string;
  defaults: Record<string, unknown>;
  tasks(ctx: RoleContext): Task[];
  handlers?(ctx: RoleContext): Task[];
  validate?(vars: Record<string, unknown>, host: Host): string[];
}

/** "admin_users[0].name: must be…" → the var path and the message ("host is in both…" has no var). */
export function legacyIssue(line: string): VarIssue {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*): (.*)$/s.exec(line);
  if (!m) return { path: [], message: line };
  const path: Array<string | number> = [m[1]!];
  for (const part of m[2]!.match(/\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*/g) ?? []) path.push(part.startsWith('[') ? Number(part.slice(1, -1)) : part.slice(1));
  return { path, message: m[3]! };
}

/**
 * A role still in the old shape (defaults + validate), wrapped as a RoleDef: its vars are declared
 * with their defaults (any type), its validate() runs as a host rule, and its documentation stays
 * hand-written. For roles being changed on other branches; convert them once those are merged.
 */
export function legacyRole(def: LegacyRoleDef): RoleDef {
  const shape = Object.fromEntries(Object.entries(def.defaults).map(([k, v]) => [k, v === undefined ? z.unknown().optional() : z.unknown().default(v)]));
  return {
    name: def.name,
    description: def.description,
    legacy: true,
    vars: z.object(shape),
    hostRules: def.validate
      ? [{ says: `checked by the role's validate()`, check: (vars, host) => def.validate!(vars as Record<string, unknown>, host as Host).map(legacyIssue) }]
      : [],
    tasks: (ctx) => def.tasks(ctx),
    handlers: def.handlers ? (ctx) => def.handlers!(ctx) : undefined,
  };
}
