import { z } from 'zod';
import { ModuleError } from '../util/errors.js';
import { planFileContent } from './copy.js';
import { ownerName } from './group.js';
import { currentFile, fileProbe, utf8Text } from './lib/file-state.js';
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
    owner: ownerName.optional(),
    group: ownerName.optional(),
    backup: z.boolean().default(false),
    /** Checks the new file before it replaces the live one; %s is the new file. */
    validate: z.string().optional(),
  })
  .refine((p) => p.state === 'absent' || p.line !== undefined, 'state: present needs line')
  .refine((p) => p.state === 'present' || p.line !== undefined || p.regexp !== undefined, 'state: absent needs line or regexp')
  .refine((p) => !(p.insertafter && p.insertbefore), 'give at most one of insertafter and insertbefore');
export type LineinfileParams = z.input<typeof params>;
type Params = z.output<typeof params>;

/**
 * One line of the file: its bytes, kept as they are unless this line is the one edited, and the text
 * patterns are matched against: UTF-8 when the bytes are valid UTF-8, else one character per byte
 * (Latin-1), so `^Größe` matches in a Latin-1 file too.
 */
interface Line {
  bytes: Buffer;
  text: string;
}

function lineOf(bytes: Buffer): Line {
  return { bytes, text: utf8Text(bytes) ?? bytes.toString('latin1') };
}

function lastIndex(lines: Line[], re: RegExp): number {
  for (let i = lines.length - 1; i >= 0; i--) if (re.test(lines[i]!.text)) return i;
  return -1;
}

const NEWLINE = 0x0a;

function splitLines(content: Buffer): Line[] {
  const lines: Line[] = [];
  let start = 0;
  for (let i = content.indexOf(NEWLINE); i >= 0; i = content.indexOf(NEWLINE, start)) {
    lines.push(lineOf(content.subarray(start, i)));
    start = i + 1;
  }
  if (start < content.length) lines.push(lineOf(content.subarray(start)));
  return lines;
}

function joinLines(lines: Line[], trailingNewline: boolean): Buffer {
  const parts: Buffer[] = [];
  lines.forEach((l, i) => {
    if (i > 0) parts.push(Buffer.of(NEWLINE));
    parts.push(l.bytes);
  });
  if (trailingNewline && lines.length) parts.push(Buffer.of(NEWLINE));
  return Buffer.concat(parts);
}

/**
 * The new content of the file, computed here rather than by sed on the host: one code path for
 * every file write (atomic, validated), and a diff that shows exactly what will be written. Lines
 * are bytes: every line but the edited one stays byte for byte as it was, whatever its encoding;
 * the new line is written in UTF-8.
 */
export function editLines(content: Buffer, p: Params): Buffer {
  const lines = splitLines(content);
  const re = p.regexp !== undefined ? new RegExp(p.regexp) : undefined;
  let trailingNewline = content.length > 0 && content[content.length - 1] === NEWLINE;

  if (p.state === 'absent') {
    const wanted = p.line === undefined ? undefined : Buffer.from(p.line, 'utf8');
    const kept = lines.filter((l) => !(re ? re.test(l.text) : wanted!.equals(l.bytes)));
    if (kept.length === lines.length) return content;
    return joinLines(kept, trailingNewline);
  }

  const line = lineOf(Buffer.from(p.line!, 'utf8'));
  const matched = re ? lastIndex(lines, re) : -1;
  if (matched >= 0) {
    if (lines[matched]!.bytes.equals(line.bytes)) return content;
    lines[matched] = line;
  } else if (lines.some((l) => l.bytes.equals(line.bytes))) {
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
  return joinLines(lines, trailingNewline);
}

export const lineinfileModule: ModuleDef<Params> = {
  name: 'lineinfile',
  schema: params,
  shellParams: ['validate'],
  probes: (p) => [fileProbe(p.path, true)],
  plan(p, ctx): Plan {
    const cur = currentFile(ctx, p.path, true);
    let content: Buffer;
    if (cur.type === 'absent') {
      if (p.state === 'absent') return { changes: [], commands: [] };
      if (!p.create) throw new ModuleError(`${p.path} does not exist (set create: true to create it)`);
      content = Buffer.alloc(0);
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
