import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { Secret } from '../util/secrets.js';
import { attributeChanges, currentFile, fileState, MAX_DIFF_BYTES, utf8Text } from './lib/file-state.js';
import { setAttributesCommand, writeFileCommand } from './lib/write-file.js';
import { ownerName } from './group.js';
import { controlPath, secretString, type Change, type ModuleContext, type ModuleDef, type Plan } from './contract.js';

export const writeOptions = {
  dest: z.string().startsWith('/', 'an absolute path'),
  mode: z.union([z.string(), z.number()]).optional(),
  owner: ownerName.optional(),
  group: ownerName.optional(),
  /** Checks the new file before it replaces the live one; %s is the new file (e.g. "nginx -t -c %s"). */
  validate: z.string().optional(),
  backup: z.boolean().default(false),
  /** Content holds secrets: never shown in a diff, only "content changed". */
  sensitive: z.boolean().default(false),
  make_parents: z.boolean().default(false),
};

const params = z
  .strictObject({
    ...writeOptions,
    content: secretString().optional(),
    /** A file on the control machine: in a playbook, relative to it; in a role, in its files/. */
    src: controlPath(z.string()).optional(),
  })
  .refine((p) => (p.content === undefined) !== (p.src === undefined), 'give exactly one of content or src');
export type CopyParams = z.input<typeof params>;
const writeSchema = z.object(writeOptions);
type WriteParams = z.output<typeof writeSchema>;

/**
 * The shared core of copy, template, lineinfile and the user module's keys: compare wanted content
 * with the host's (or with what an earlier task would have written), byte for byte, diff it when
 * both sides are text, and write atomically with validation when it differs. Content is bytes from
 * end to end: a binary or Latin-1 file arrives as it is and compares as it is.
 */
export function planFileContent(p: WriteParams, wanted: string | Buffer, ctx: ModuleContext): Plan {
  const content = typeof wanted === 'string' ? Buffer.from(wanted, 'utf8') : wanted;
  const cur = currentFile(ctx, p.dest, true);
  if (cur.type !== 'absent' && cur.type !== 'file') throw new Error(`${p.dest} is a ${cur.type}, not a file`);
  const wantSha = createHash('sha256').update(content).digest('hex');
  const same = cur.type === 'file' && (cur.content !== undefined ? cur.content.equals(content) : cur.sha256 === wantSha);
  const changes: Change[] = [];
  if (!same) {
    const before = cur.type === 'absent' ? '' : cur.content === undefined ? undefined : utf8Text(cur.content);
    const after = content.length <= MAX_DIFF_BYTES ? utf8Text(content) : undefined;
    const diffable = !p.sensitive && before !== undefined && after !== undefined;
    // Bytes that are not text get no diff (a diff of replacement characters would hide the change).
    const binary = !p.sensitive && ((cur.content !== undefined && before === undefined) || (content.length <= MAX_DIFF_BYTES && after === undefined));
    changes.push({
      kind: 'file',
      target: p.dest,
      action: `${cur.type === 'absent' ? 'create' : 'update content'}${binary ? ' (binary content changed)' : ''}`,
      before: diffable ? before : undefined,
      after: diffable ? after : undefined,
      sensitive: p.sensitive || undefined,
    });
    // Attributes are set on the new file as it is written: said in the same change, so a file a
    // package laid down before the write reads the same in a plan and in the run.
    const attrs = cur.type === 'file' ? attributeChanges(p.dest, cur, p).changes.map((c) => c.action) : [];
    if (attrs.length) changes[0]!.action += ` (${attrs.join(', ')})`;
    return {
      changes,
      commands: [writeFileCommand(p.dest, content, { mode: p.mode, owner: p.owner, group: p.group, validate: p.validate, backup: p.backup, makeParents: p.make_parents })],
      predict: (s) => void s.files.set(p.dest, content),
    };
  }
  const attrs = attributeChanges(p.dest, cur, p);
  if (!attrs.changes.length) return { changes: [], commands: [] };
  return { changes: attrs.changes, commands: [setAttributesCommand(p.dest, 'file', attrs.needed)] };
}

export const copyModule: ModuleDef<z.output<typeof params>> = {
  name: 'copy',
  schema: params,
  shellParams: ['validate'],
  probes: (p) => [fileState(p.dest, true)],
  plan(p, ctx) {
    let content: string | Buffer;
    if (p.src !== undefined) {
      try {
        content = readFileSync(p.src);
      } catch (err) {
        throw new Error(`cannot read src ${p.src}: ${(err as NodeJS.ErrnoException).code}`);
      }
    } else content = p.content instanceof Secret ? p.content.reveal() : p.content!;
    return planFileContent({ ...p, sensitive: p.sensitive || p.content instanceof Secret }, content, ctx);
  },
};
