import { createHash } from 'node:crypto';
import type { Probe, ProbeResult } from '../../facts/index.js';
import { quote } from '../../util/quote.js';
import type { Change, ModuleContext } from '../types.js';

/** Files larger than this are compared by checksum only (no content diff). */
export const MAX_DIFF_BYTES = 256 * 1024;

export interface FileState {
  type: 'absent' | 'file' | 'directory' | 'link' | 'other';
  mode?: string; // octal, e.g. "644"
  owner?: string;
  group?: string;
  size?: number;
  sha256?: string;
  /** Content when it is small enough for a diff. */
  content?: string;
  /** Link target. */
  target?: string;
}

export function fileProbeKey(path: string, withContent: boolean): string {
  return `file:${withContent ? 'c' : 's'}:${path}`;
}

/** One probe reads type, mode, owner, group, checksum and (optionally) content of a path. */
export function fileProbe(path: string, withContent = true): Probe {
  const p = quote(path);
  // Few processes per file (a no-change run reads dozens of files per host): one stat, then the
  // content (its checksum is computed here) or, for big files and attribute-only reads, sha256sum.
  const checksum = `printf 'file %s %s %s %s %s' "$@" "$(sha256sum ${p} | cut -d' ' -f1)"`;
  const regular = withContent
    ? `if [ "$4" -le ${MAX_DIFF_BYTES} ]; then printf 'file %s %s %s %s -\\n' "$@"; base64 -w0 ${p}; else ${checksum}; fi`
    : checksum;
  return {
    key: fileProbeKey(path, withContent),
    script:
      `if [ -L ${p} ]; then printf 'link %s' "$(readlink ${p})"; ` +
      `elif [ -d ${p} ]; then stat -c 'directory %a %U %G' ${p}; ` +
      `elif [ -f ${p} ]; then set -- $(stat -c '%a %U %G %s' ${p}); ${regular}; ` +
      `elif [ -e ${p} ]; then echo other; else echo absent; fi`,
  };
}

export function parseFileState(r: ProbeResult | undefined): FileState {
  if (!r) return { type: 'absent' };
  const [head = '', body] = r.stdout.split('\n', 2);
  const f = head.trim().split(' ');
  switch (f[0]) {
    case 'link':
      return { type: 'link', target: head.slice(5) };
    case 'directory':
      return { type: 'directory', mode: f[1], owner: f[2], group: f[3] };
    case 'file': {
      const bytes = body !== undefined ? Buffer.from(body.trim(), 'base64') : undefined;
      return {
        type: 'file',
        mode: f[1],
        owner: f[2],
        group: f[3],
        size: Number(f[4]),
        // "-": the content came instead of the checksum.
        sha256: f[5] === '-' && bytes ? createHash('sha256').update(bytes).digest('hex') : f[5],
        content: bytes?.toString('utf8'),
      };
    }
    case 'absent':
      return { type: 'absent' };
    default:
      return { type: 'other' };
  }
}

/** The file as this run sees it: what an earlier task wrote (or would write) wins over the probe. */
export function currentFile(ctx: ModuleContext, path: string, withContent = true): FileState {
  const predicted = ctx.predicted.files.get(path);
  if (predicted === null) return { type: 'absent' };
  if (predicted !== undefined) {
    const probed = parseFileState(ctx.results.get(fileProbeKey(path, withContent)));
    // Attributes come from the host when the file exists there; content from the earlier task.
    return { ...probed, type: 'file', content: predicted, sha256: undefined };
  }
  if (ctx.predicted.directories.has(path)) return { type: 'directory' };
  return parseFileState(ctx.results.get(fileProbeKey(path, withContent)));
}

export interface Attributes {
  mode?: string | number;
  owner?: string;
  group?: string;
}

/** Octal mode as a string without leading zeros ("0644" → "644"). */
export function normaliseMode(mode: string | number | undefined): string | undefined {
  if (mode === undefined) return undefined;
  const s = typeof mode === 'number' ? mode.toString(8) : mode;
  if (!/^[0-7]{3,4}$/.test(s)) throw new Error(`mode "${mode}" is not an octal mode like "0644"`);
  return s.replace(/^0(?=[0-7]{3}$)/, '');
}

/** Changes and commands to bring mode/owner/group in line (for an existing path). */
export function attributeChanges(path: string, current: FileState, want: Attributes, kind: Change['kind'] = 'file'): { changes: Change[]; cmds: string[] } {
  const changes: Change[] = [];
  const cmds: string[] = [];
  const mode = normaliseMode(want.mode);
  if (mode && current.mode !== mode) {
    changes.push({ kind, target: path, action: `mode ${current.mode ?? '(new)'} → ${mode}` });
    cmds.push(`chmod ${mode} ${quote(path)}`);
  }
  const ownerChanged = want.owner && current.owner !== want.owner;
  const groupChanged = want.group && current.group !== want.group;
  if (ownerChanged || groupChanged) {
    changes.push({
      kind,
      target: path,
      action: `owner ${current.owner ?? '?'}:${current.group ?? '?'} → ${want.owner ?? current.owner}:${want.group ?? current.group}`,
    });
    cmds.push(`chown ${quote(`${want.owner ?? ''}${want.group ? ':' + want.group : ''}`)} ${quote(path)}`);
  }
  return { changes, cmds };
}
