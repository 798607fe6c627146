import { createHash } from 'node:crypto';
import { PROBE_RETRY, type ProbeResult } from '../../facts/index.js';
import { quote } from '../../util/quote.js';
import { sharedProbe, type Change, type ModuleContext, type Probe } from '../contract.js';

/** Files larger than this are compared by checksum only (no content diff). */
export const MAX_DIFF_BYTES = 256 * 1024;

export interface FileState {
  type: 'absent' | 'file' | 'directory' | 'link' | 'other';
  mode?: string; // octal, e.g. "644"
  owner?: string;
  group?: string;
  size?: number;
  sha256?: string;
  /** Content (bytes) when it is small enough for a diff. */
  content?: Buffer;
  /** Link target. */
  target?: string;
}

/**
 * A file's state: type, mode, owner, group, and content (small files) or checksum (big files); an
 * attribute-only read (withContent false) gets neither. Every file probe of a batch shares ONE read: the host runs a handful of
 * processes however many files a host carries (two per file made most of a no-change run's cost).
 */
export function fileState(path: string, withContent = true): Probe<FileState> {
  const item = `${withContent ? 'c' : 's'}:${path}`;
  return sharedProbe(`file:${item}`, { group: FILES_GROUP, item, read: readFiles, pick: pickFile }, parseFileState);
}

const FILES_GROUP = 'files';
const END = '@@end';

/**
 * The shared read, in three parts: `find -printf` of every path (type, mode, owner, group, size,
 * name, link target; NUL-separated, so any name is safe); sha256sum of the files too big for a
 * content read; then the content of the others, concatenated, in base64. An attribute-only read
 * (`withContent` false) gets no checksum: nothing it plans with depends on the content.
 */
function readFiles(items: string[]): string {
  const paths = [...new Set(items.map((i) => i.slice(2)))];
  // The lines of every directory on the way too (never the content): who controls each, and which are links.
  const all = [...new Set([...paths, ...paths.flatMap(ancestorEntries)])].map(quote).join(' ');
  const content = [...new Set(items.filter((i) => i.startsWith('c:')).map((i) => quote(i.slice(2))))].join(' ');
  const lines = [
    `find ${all} -maxdepth 0 -printf '%y\\0%m\\0%u\\0%g\\0%s\\0%p\\0%l\\0%U\\0%G\\0' 2>/dev/null; printf '${END}\\0'`,
    ...(content ? [`find ${content} -maxdepth 0 -type f -size +${MAX_DIFF_BYTES}c -exec sha256sum -z -- {} + 2>/dev/null`] : []),
    `printf '${END}\\0'`,
    ...(content ? [`find ${content} -maxdepth 0 -type f -size -${MAX_DIFF_BYTES + 1}c -exec cat -- {} + 2>/dev/null | base64 -w0`] : []),
  ];
  return lines.join('\n');
}

/**
 * What the read looks at besides the path itself: each directory on the way as named (`/home/app/.config`,
 * seen without following it: is it a link?) and as reached (`/home/app/.`: who can change its entries).
 */
function ancestorEntries(path: string): string[] {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  const out = ['/.'];
  for (let i = 1; i < parts.length; i++) {
    const prefix = '/' + parts.slice(0, i).join('/');
    out.push(prefix, `${prefix}/.`);
  }
  return out;
}

interface EntryMeta {
  type: string;
  mode: string;
  owner: string;
  group: string;
  size: number;
  target: string;
  uid: number;
  gid: number;
}

/**
 * Why reading `path` would follow a link that someone other than root can put there, or undefined.
 * The rule of the writes (safe-path.ts): a link on the way is followed only when it lies in a directory
 * only root can change. Without it, a user who turns `~/.config` into a link to `/root` gets root's
 * files read into the diff, the plan file and the log. The last component itself is never followed.
 */
export function unsafeAncestor(path: string, meta: ReadonlyMap<string, EntryMeta>): string | undefined {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  for (let i = 1; i < parts.length; i++) {
    const parent = '/' + parts.slice(0, i - 1).join('/');
    const entry = meta.get('/' + parts.slice(0, i).join('/'));
    if (entry?.type !== 'l') continue;
    const dir = meta.get(parent === '/' ? '/.' : `${parent}/.`);
    const who = dir ? controller(dir) : 'someone';
    if (who !== 'root') return `${'/' + parts.slice(0, i).join('/')} is a symbolic link in a directory that ${who} can change: provision does not read through it`;
  }
  return undefined;
}

/** Who can change a directory's entries, as safe-path.ts's controller() says it. */
function controller(dir: EntryMeta): string {
  const mode = parseInt(dir.mode, 8);
  if (mode & 0o002 || (mode & 0o020 && dir.gid !== 0)) return mode & 0o1000 ? 'everyone' : `group ${dir.group} or everyone`;
  return dir.uid === 0 ? 'root' : `user ${dir.owner}`;
}

interface FilesRead {
  meta: Map<string, EntryMeta>;
  sums: Map<string, string>;
  /** Content of the small regular files read with content; undefined when they changed while read. */
  contents?: Map<string, Buffer>;
}

const filesReads = new WeakMap<ProbeResult, FilesRead>();

function parseFilesRead(out: ProbeResult, items: string[]): FilesRead {
  const fields = out.stdout.split('\0');
  let i = 0;
  const meta: FilesRead['meta'] = new Map();
  while (i < fields.length && fields[i] !== END) {
    const [type = '', mode = '', owner = '', group = '', size = '0', name = '', target = '', uid = '', gid = ''] = fields.slice(i, i + 9);
    meta.set(name, { type, mode, owner, group, size: Number(size), target, uid: Number(uid), gid: Number(gid) });
    i += 9;
  }
  const sums = new Map<string, string>();
  for (i++; i < fields.length && fields[i] !== END; i++) {
    const m = /^([0-9a-f]{64}) [ *](.*)$/s.exec(fields[i]!);
    if (m) sums.set(m[2]!, m[1]!);
  }
  const blob = Buffer.from((fields[i + 1] ?? '').trim(), 'base64');
  // The small regular files read with content, in the order find read them.
  const small = [...new Set(items.filter((x) => x.startsWith('c:')).map((x) => x.slice(2)))].filter((p) => {
    const m = meta.get(p);
    return m?.type === 'f' && m.size <= MAX_DIFF_BYTES;
  });
  let contents: Map<string, Buffer> | undefined;
  if (small.reduce((n, p) => n + meta.get(p)!.size, 0) === blob.length) {
    contents = new Map();
    let at = 0;
    for (const p of small) {
      const n = meta.get(p)!.size;
      contents.set(p, blob.subarray(at, at + n));
      at += n;
    }
  }
  return { meta, sums, contents };
}

/** One file's part of the shared read, in the form a probe of its own printed (plans fingerprint it). */
function pickFile(out: ProbeResult, item: string, items: string[]): ProbeResult {
  let read = filesReads.get(out);
  if (!read) filesReads.set(out, (read = parseFilesRead(out, items)));
  const path = item.slice(2);
  const refused = unsafeAncestor(path, read.meta);
  if (refused) return { stdout: `refused ${refused}`, code: 0 };
  const m = read.meta.get(path);
  if (!m) return { stdout: 'absent\n', code: 0 };
  switch (m.type) {
    case 'l':
      return { stdout: `link ${m.target}`, code: 0 };
    case 'd':
      return { stdout: `directory ${m.mode} ${m.owner} ${m.group}\n`, code: 0 };
    case 'f': {
      const head = `file ${m.mode} ${m.owner} ${m.group} ${m.size}`;
      if (item.startsWith('c:') && m.size <= MAX_DIFF_BYTES) {
        const content = read.contents?.get(path);
        // Changed between the two reads: read again (runProbes); no content, and a checksum that matches nothing.
        return content ? { stdout: `${head} -\n${content.toString('base64')}`, code: 0 } : { stdout: `${head} ?`, code: PROBE_RETRY };
      }
      return { stdout: item.startsWith('c:') ? `${head} ${read.sums.get(path) ?? '?'}` : head, code: 0 };
    }
    default:
      return { stdout: 'other\n', code: 0 };
  }
}

export function parseFileState(r: ProbeResult | undefined): FileState {
  if (!r) return { type: 'absent' };
  const [head = '', body] = r.stdout.split('\n', 2);
  const f = head.trim().split(' ');
  switch (f[0]) {
    case 'refused':
      // The task fails on this host, as its write would (exit 95 of safe-path.ts); nothing of what is behind the link is kept.
      throw new Error(`provision refused: ${head.slice(8)}`);
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
        content: bytes,
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
    const probed = ctx.read(fileState(path, withContent));
    // Attributes come from the host when the file exists there; content from the earlier task.
    return { ...probed, type: 'file', content: predicted, size: predicted.length, sha256: undefined };
  }
  if (ctx.predicted.directories.has(path)) return { type: 'directory' };
  return ctx.read(fileState(path, withContent));
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

/**
 * Changes to bring mode/owner/group in line (for an existing path), and the attributes that must be
 * set for that (setAttributesCommand of write-file.ts sets them without following links).
 */
export function attributeChanges(path: string, current: FileState, want: Attributes, kind: Change['kind'] = 'file'): { changes: Change[]; needed: Attributes } {
  const changes: Change[] = [];
  const needed: Attributes = {};
  const mode = normaliseMode(want.mode);
  if (mode && current.mode !== mode) {
    changes.push({ kind, target: path, action: `mode ${current.mode ?? '(new)'} → ${mode}` });
    needed.mode = mode;
  }
  const ownerChanged = want.owner && current.owner !== want.owner;
  const groupChanged = want.group && current.group !== want.group;
  if (ownerChanged || groupChanged) {
    changes.push({
      kind,
      target: path,
      action: `owner ${current.owner ?? '?'}:${current.group ?? '?'} → ${want.owner ?? current.owner}:${want.group ?? current.group}`,
    });
    if (ownerChanged) needed.owner = want.owner;
    if (groupChanged) needed.group = want.group;
  }
  return { changes, needed };
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The content as text when it is valid UTF-8 (diffable); undefined for anything else (binary, Latin-1…). */
export function utf8Text(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
