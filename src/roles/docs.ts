import type { z } from 'zod';
import { rulesOf } from './define.js';
import type { RoleDef } from './types.js';
import { defaultOf, SHARED, type VarDoc } from './vars.js';

/*
 * docs/roles/<role>.md from the role's schema (`npm run docs`). A doc has two generated blocks —
 * the role's description, and its vars with the rules between them — between markers; everything
 * else in the file is written by hand and kept as it is.
 */

const BLOCKS = ['description', 'vars'] as const;
type Block = (typeof BLOCKS)[number];

const begin = (role: string, block: Block) => `<!-- generated: ${block} of role ${role} (src/roles/${role}/index.ts) by \`npm run docs\`; edit it there -->`;
const end = (block: Block) => `<!-- end generated: ${block} -->`;

function unwrap(schema: z.ZodType): z.ZodType {
  const def = schema._zod.def as { type: string; innerType?: z.ZodType };
  return (def.type === 'default' || def.type === 'optional' || def.type === 'nullable') && def.innerType ? unwrap(def.innerType) : schema;
}

/** The nearest VarDoc metadata, from the var's outer schema inwards. */
function docMeta(schema: z.ZodType): VarDoc {
  const out: VarDoc = {};
  for (let s: z.ZodType | undefined = schema; s; ) {
    const meta = (s.meta() ?? {}) as VarDoc;
    out.type ??= meta.type;
    out.defaultText ??= meta.defaultText;
    const def = s._zod.def as { type: string; innerType?: z.ZodType };
    s = def.type === 'default' || def.type === 'optional' || def.type === 'nullable' ? def.innerType : undefined;
  }
  return out;
}

function typeText(schema: z.ZodType): string {
  const named = docMeta(schema).type;
  if (named) return named;
  const t = unwrap(schema)._zod.def.type;
  return { string: 'string', number: 'number', boolean: 'true/false', array: 'list', record: 'map', object: 'map' }[t as string] ?? t;
}

/** Strings YAML would read as a number, a boolean or null unless quoted ("027", "yes"). */
const READS_AS_OTHER = /^([-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?|0x[\da-fA-F]+|0o[0-7]+|true|false|yes|no|on|off|null|~)$/i;

/** A value as it is written in YAML (flow style), in backquotes. */
function yamlValue(v: unknown): string {
  const flow = (x: unknown): string => {
    if (typeof x === 'string') return x === '' || READS_AS_OTHER.test(x) ? JSON.stringify(x) : /^[\w./@:+=-]+$/.test(x) ? x : JSON.stringify(x);
    if (Array.isArray(x)) return `[${x.map(flow).join(', ')}]`;
    if (x && typeof x === 'object') return `{${Object.entries(x).map(([k, y]) => ` ${k}: ${flow(y)}`).join(',')}${Object.keys(x).length ? ' ' : ''}}`;
    return String(x);
  };
  return `\`${flow(v)}\``;
}

function defaultText(schema: z.ZodType): string {
  const given = docMeta(schema).defaultText;
  if (given) return given;
  if ((schema._zod.def as { type: string }).type === 'default') return yamlValue(defaultOf(schema));
  return schema.safeParse(undefined).success ? '—' : '— (**required**)';
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export interface VarRow {
  name: string;
  type: string;
  default: string;
  description: string;
  shared: boolean;
}

/** One row per var of the role, in the schema's order. */
export function varRows(role: RoleDef): VarRow[] {
  return Object.entries(role.vars.shape).map(([name, s]) => {
    const schema = s as z.ZodType;
    return { name, type: typeText(schema), default: defaultText(schema), description: schema.description ?? '', shared: name in SHARED };
  });
}

function generated(role: RoleDef, block: Block): string {
  if (block === 'description') return role.description;
  const lines = [
    '| var | type | default | meaning |',
    '| --- | --- | --- | --- |',
    ...varRows(role).map((r) => `| \`${r.name}\`${r.shared ? ' (shared)' : ''} | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`),
  ];
  const rules = [...rulesOf(role.vars), ...(role.hostRules ?? []).map((r) => r.says)];
  if (rules.length) lines.push('', 'Checked before any connection, besides each var\'s type and form above:', '', ...rules.map((r) => `- ${r}`));
  lines.push('', '"(shared)": one definition for every role that reads the var (`src/roles/vars.ts`).');
  return lines.join('\n');
}

/**
 * The doc of a role: `existing` (the committed file) with its generated blocks rewritten, or a new
 * file with the blocks alone. A committed doc without its markers is refused (its text would be lost).
 */
export function renderRoleDoc(role: RoleDef, existing?: string): string {
  if (existing === undefined) {
    return [`# Role \`${role.name}\``, '', begin(role.name, 'description'), generated(role, 'description'), end('description'), '', '## Variables', '', begin(role.name, 'vars'), generated(role, 'vars'), end('vars'), ''].join('\n');
  }
  let out = existing;
  for (const block of BLOCKS) {
    const from = out.indexOf(begin(role.name, block));
    const to = out.indexOf(end(block));
    if (from < 0 || to < from) throw new Error(`docs/roles/${role.name}.md has no generated ${block} block: add the lines\n${begin(role.name, block)}\n${end(block)}`);
    out = out.slice(0, from) + begin(role.name, block) + '\n' + generated(role, block) + '\n' + out.slice(to);
  }
  return out;
}
