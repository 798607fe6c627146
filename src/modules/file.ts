import { z } from 'zod';
import { ownerName } from './group.js';
import { attributeChanges, currentFile, fileProbe } from './lib/file-state.js';
import { linkCommand, makeDirectoryCommand, removeCommand, setAttributesCommand, writeFileCommand } from './lib/write-file.js';
import type { ModuleDef, Plan, PredictedState } from './types.js';

const params = z.strictObject({
  path: z.string().startsWith('/', 'an absolute path'),
  state: z.enum(['file', 'directory', 'link', 'absent', 'touch']).default('file'),
  /** Link target, for state: link. */
  src: z.string().optional(),
  mode: z.union([z.string(), z.number()]).optional(),
  owner: ownerName.optional(),
  group: ownerName.optional(),
  /**
   * The package that creates this path when installed (e.g. nginx's default site). A dry run on a host
   * where that package is not installed yet, but an earlier task would install it, then predicts the
   * path as present, exactly as the real run will find it.
   */
  created_by_package: z.string().optional(),
});
export type FileParams = z.input<typeof params>;

export const fileModule: ModuleDef<z.output<typeof params>> = {
  name: 'file',
  schema: params,
  probes: (p) => [fileProbe(p.path, false)],
  plan(p, ctx): Plan {
    let cur = currentFile(ctx, p.path, false);
    if (cur.type === 'absent' && ctx.check && p.created_by_package && ctx.predicted.packagesInstalled.has(p.created_by_package)) {
      cur = { type: 'file' };
    }
    // Every command below reaches the path without following a link a non-root user could have
    // placed on the way, and acts on a user's files as that user (lib/safe-path.ts).
    switch (p.state) {
      case 'absent':
        if (cur.type === 'absent') return { changes: [], commands: [] };
        return {
          changes: [{ kind: 'file', target: p.path, action: `remove` }],
          commands: [removeCommand(p.path)],
          predict: (s) => {
            s.files.set(p.path, null);
            s.directories.delete(p.path);
          },
        };
      case 'directory': {
        if (cur.type !== 'absent' && cur.type !== 'directory') throw new Error(`${p.path} exists and is a ${cur.type}, not a directory`);
        const predict = (s: PredictedState) => void s.directories.add(p.path);
        if (cur.type === 'absent') {
          return {
            changes: [{ kind: 'file', target: p.path, action: 'create directory' }],
            commands: [makeDirectoryCommand(p.path, { mode: p.mode ?? '755', owner: p.owner, group: p.group })],
            predict,
          };
        }
        const attrs = attributeChanges(p.path, cur, p);
        if (!attrs.changes.length) return { changes: [], commands: [] };
        return { changes: attrs.changes, commands: [setAttributesCommand(p.path, 'directory', attrs.needed)], predict };
      }
      case 'link': {
        if (!p.src) throw new Error('state: link needs src (the link target)');
        if (cur.type === 'link' && cur.target === p.src) return { changes: [], commands: [] };
        if (cur.type === 'directory') throw new Error(`${p.path} is a directory; refusing to replace it with a link`);
        return {
          changes: [{ kind: 'file', target: p.path, action: cur.type === 'link' ? `relink ${cur.target} → ${p.src}` : `link → ${p.src}`, before: cur.target, after: p.src }],
          commands: [linkCommand(p.path, p.src)],
        };
      }
      case 'touch':
      case 'file': {
        if (cur.type === 'absent') {
          if (p.state === 'file') {
            // In check mode a file that an earlier task would create is handled by currentFile; here it truly is missing.
            throw new Error(`${p.path} does not exist (state: file only manages an existing file; use touch or copy to create it)`);
          }
          return {
            changes: [{ kind: 'file', target: p.path, action: 'create empty file' }],
            commands: [writeFileCommand(p.path, Buffer.alloc(0), { mode: p.mode, owner: p.owner, group: p.group, onlyIfAbsent: true })],
            predict: (s) => void s.files.set(p.path, Buffer.alloc(0)),
          };
        }
        if (cur.type !== 'file') throw new Error(`${p.path} is a ${cur.type}, not a file`);
        const attrs = attributeChanges(p.path, cur, p);
        if (!attrs.changes.length) return { changes: [], commands: [] };
        return { changes: attrs.changes, commands: [setAttributesCommand(p.path, 'file', attrs.needed)] };
      }
    }
  },
};
