import { z } from 'zod';
import { ModuleError } from '../util/errors.js';
import { planFileContent } from './copy.js';
import { currentFile, fileProbe } from './lib/file-state.js';
import type { ModuleDef, Plan } from './types.js';

const regex = z.string().refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, 'a valid JavaScript regular expression');

const params = z
  .strictObject({
    path: z.string().startsWith('/', 'an absolute path'),
    /** The whole line (without newline). Required with state: present. */
    line: z.string().regex(/^[^\n]*$/, 'a single line').optional(),
    /** Lines matching this (JavaScript syntax) are the ones replaced (the last match) or removed (all). */
    regexp: regex.optional(),
    state: z.enum(['present', 'absent']).default('present'),
    /** Where a new line goes: after the last line matching this, or at the end ("EOF", the default). */
    insertafter: z.union([z.literal('EOF'), regex]).optional(),
    /** Where a new line goes: before the last line matching this, or at the beginning ("BOF"). */
    insertbefore: z.union([z.literal('BOF'), regex]).optional(),
    /** Create the file when it is missing (otherwise a missing file is an error). */
    create: z.boolean().default(false),
    mode: z.union([z.string(), z.number()]).optional(),
    owner: z.string().optional(),
    group: z.string().optional(),
    backup: z.boolean().default(false),
    /** Checks the new file before it replaces the live one; %s is the new file. */
    validate: z.string().optional(),
  })
  .refine((p) => p.state === 'absent' || p.line !== undefined, 'state: present needs line')
  .refine((p) => p.state === 'present' || p.line !== undefined || p.regexp !== undefined, 'state: absent needs line or regexp')
  .refine((p) => !(p.insertafter && p.insertbefore), 'give at most one of insertafter and insertbefore');
export type LineinfileParams = z.input<typeof params>;
type Params = z.output<typeof params>;

function lastIndex(lines: string[], re: RegExp): number {
  for (let i = lines.length - 1; i >= 0; i--) if (re.test(lines[i]!)) return i;
  return -1;
}

/**
 * The new content of the file, computed here rather than by sed on the host: one code path for
 * every file write (atomic, validated), and a diff that shows exactly what will be written.
 */
export function editLines(content: string, p: Params): string {
  const endsWithNewline = content.endsWith('\n');
  const lines = content === '' ? [] : (endsWithNewline ? content.slice(0, -1) : content).split('\n');
  const re = p.regexp !== undefined ? new RegExp(p.regexp) : undefined;
  let trailingNewline = endsWithNewline;

  if (p.state === 'absent') {
    const kept = lines.filter((l) => !(re ? re.test(l) : l === p.line));
    if (kept.length === lines.length) return content;
    return kept.length ? kept.join('\n') + (trailingNewline ? '\n' : '') : '';
  }

  const line = p.line!;
  const matched = re ? lastIndex(lines, re) : -1;
  if (matched >= 0) {
    if (lines[matched] === line) return content;
    lines[matched] = line;
  } else if (lines.includes(line)) {
    return content;
  } else {
    let at = lines.length;
    if (p.insertbefore === 'BOF') at = 0;
    else if (p.insertbefore !== undefined) {
      const i = lastIndex(lines, new RegExp(p.insertbefore));
      if (i >= 0) at = i;
    } else if (p.insertafter !== undefined && p.insertafter !== 'EOF') {
      const i = lastIndex(lines, new RegExp(p.insertafter));
      if (i >= 0) at = i + 1;
    }
    // A line added at the end gets its newline, and the old last line gets one if it had none.
    if (at === lines.length) trailingNewline = true;
    lines.splice(at, 0, line);
  }
  return lines.join('\n') + (trailingNewline ? '\n' : '');
}

export const lineinfileModule: ModuleDef<Params> = {
  name: 'lineinfile',
  schema: params,
  shellParams: ['validate'],
  probes: (p) => [fileProbe(p.path, true)],
  plan(p, ctx): Plan {
    const cur = currentFile(ctx, p.path, true);
    let content: string;
    if (cur.type === 'absent') {
      if (p.state === 'absent') return { changes: [], commands: [] };
      if (!p.create) throw new ModuleError(`${p.path} does not exist (set create: true to create it)`);
      content = '';
    } else if (cur.type !== 'file') {
      throw new ModuleError(`${p.path} is a ${cur.type}, not a file`);
    } else if (cur.content === undefined) {
      throw new ModuleError(`${p.path} is too large to edit line by line (${cur.size} bytes)`);
    } else {
      content = cur.content;
    }
    const next = editLines(content, p);
    return planFileContent(
      { dest: p.path, mode: p.mode, owner: p.owner, group: p.group, validate: p.validate, backup: p.backup, sensitive: false, make_parents: false },
      next,
      ctx,
    );
  },
};
