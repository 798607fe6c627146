import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import nunjucks from 'nunjucks';
import { z } from 'zod';
import { PlaybookError } from '../util/errors.js';
import { revealIfSecret, Secret } from '../util/secrets.js';
import { fileProbe } from './lib/file-state.js';
import { planFileContent, writeOptions } from './copy.js';
import type { ModuleDef } from './types.js';

const params = z.strictObject({
  ...writeOptions,
  /** Template file (Nunjucks, Jinja-like syntax) on the control machine. */
  src: z.string(),
  /** Variables for the template (roles pass their merged vars; playbooks default to the host's vars). */
  vars: z.record(z.string(), z.unknown()).optional(),
});
export type TemplateParams = z.input<typeof params>;

const environments = new Map<string, nunjucks.Environment>();
function environment(dir: string): nunjucks.Environment {
  let env = environments.get(dir);
  if (!env) {
    // throwOnUndefined: a template that names a var nobody set is an error, never an empty string.
    env = new nunjucks.Environment(new nunjucks.FileSystemLoader(dir, { noCache: false }), {
      autoescape: false,
      throwOnUndefined: true,
      trimBlocks: true,
      lstripBlocks: true,
    });
    environments.set(dir, env);
  }
  return env;
}

/** Secrets become their values inside the rendered file (which the report masks); everything else as is. */
function revealAll(v: unknown): unknown {
  if (v instanceof Secret) return v.reveal();
  if (Array.isArray(v)) return v.map(revealAll);
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revealAll(x)]));
  }
  return revealIfSecret(v);
}

/** Every secret value reachable from the vars. */
function secretValues(v: unknown, out: string[] = []): string[] {
  if (v instanceof Secret) out.push(v.reveal());
  else if (Array.isArray(v)) v.forEach((x) => secretValues(x, out));
  else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach((x) => secretValues(x, out));
  return out.filter((s) => s.length > 0);
}

export function renderTemplate(file: string, vars: Record<string, unknown>): string {
  if (!existsSync(file)) throw new PlaybookError(`template ${file} does not exist`);
  try {
    return environment(path.dirname(file)).render(path.basename(file), revealAll(vars) as object);
  } catch (err) {
    const msg = (err as Error).message.replace(/\s+/g, ' ').trim();
    // Nunjucks names only a position ("[Line 3, Column 8] attempted to output null or undefined value"):
    // show the template line, so the variable nobody set is in the message.
    const at = /\[Line (\d+), Column \d+\]/.exec(msg);
    const line = at ? readFileSync(file, 'utf8').split('\n')[Number(at[1]) - 1]?.trim() : undefined;
    throw new PlaybookError(`template ${file}: ${msg}${line ? ` (in: ${line})` : ''}`);
  }
}

export function renderString(text: string, vars: Record<string, unknown>): string {
  const env = environment(process.cwd());
  return env.renderString(text, revealAll(vars) as object);
}

export const templateModule: ModuleDef<z.output<typeof params>> = {
  name: 'template',
  schema: params,
  probes: (p) => [fileProbe(p.dest, true)],
  plan(p, ctx) {
    const vars = { ...ctx.host.vars, inventory_hostname: ctx.host.name, ...(p.vars ?? {}) };
    const content = renderTemplate(p.src, vars);
    // A template that pulls in a secret is sensitive by itself: never diff it in clear.
    const sensitive = p.sensitive || secretValues(vars).some((v) => content.includes(v));
    return planFileContent({ ...p, sensitive }, content, ctx);
  },
};
