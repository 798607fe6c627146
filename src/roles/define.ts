import { z } from 'zod';
import type { RoleDef, RoleVarsSchema, VarIssue } from './types.js';

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
