import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type ScalarTag } from 'yaml';
import type { z } from 'zod';
import { editDistance } from './edit-distance.js';
import { InputError } from './errors.js';

/** A parsed YAML file that remembers where every node came from, for errors that name file:line:col. */
export interface LocatedYaml {
  file: string;
  lines: LineCounter;
  doc: Document;
  data: unknown;
}

/**
 * What kind of YAML error this is, in words that never quote the document: for files whose values
 * are secrets, where yaml's own messages ("Invalid escape sequence \\q", "Unresolved alias … NAME")
 * would print a piece of a value.
 */
const YAML_ERROR_KINDS: Record<string, string> = {
  BAD_DQ_ESCAPE: 'an invalid escape sequence in a double-quoted value',
  BAD_INDENT: 'bad indentation, or an unclosed [ or {',
  BAD_SCALAR_START: 'a plain value that starts with a reserved character (quote the value)',
  BLOCK_AS_IMPLICIT_KEY: 'a value that reads as a nested map (quote values that contain ": ")',
  MULTILINE_IMPLICIT_KEY: 'a key that spans several lines',
  MISSING_CHAR: 'a missing closing quote or bracket',
  UNEXPECTED_TOKEN: 'unexpected text after a value',
  DUPLICATE_KEY: 'a duplicate key',
  TAB_AS_INDENT: 'a tab used for indentation',
};

function yamlErrorKind(code: string): string {
  return YAML_ERROR_KINDS[code] ?? code.toLowerCase().replace(/_/g, ' ');
}

export interface ParseOptions {
  /** The file holds secrets: errors name file:line:col and the kind of error only, never its text or field. */
  secretValues?: boolean;
}

export function parseYaml(
  text: string,
  file: string,
  ErrorClass: new (msg: string, hint?: string) => InputError,
  customTags: ScalarTag[] = [],
  opts: ParseOptions = {},
): LocatedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, customTags, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    if (opts.secretValues) {
      // The start of the value the error is in, not the error's own column: that would tell where
      // in the secret a bad character sits.
      const { line, col } = lines.linePos(valueStartAtOffset(doc, e.pos[0]) ?? e.pos[0]);
      throw new ErrorClass(`${file}:${line}:${col}: YAML syntax error: ${yamlErrorKind(e.code)}`);
    }
    const { line, col } = lines.linePos(e.pos[0]);
    const at = pathAtOffset(doc, e.pos[0]);
    if (e.code === 'DUPLICATE_KEY') {
      // The error sits on the second occurrence of the key: name it in full.
      throw new ErrorClass(`${file}:${line}:${col}: ${fieldName(at)}: duplicate key (a key may appear once in a map)`);
    }
    const field = at.length ? `${fieldName(at)}: ` : '';
    throw new ErrorClass(`${file}:${line}:${col}: ${field}YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  let data: unknown;
  try {
    // yaml refuses aliases that expand too much ("billion laughs": 9 aliases of 9 aliases of …)
    // with a ReferenceError, as it does an alias without its anchor. Both are bad input in this file.
    data = doc.toJS();
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    let firstAlias: Node | undefined;
    visit(doc, { Alias: (_key, node) => ((firstAlias ??= node), visit.BREAK) });
    const where = whereAt({ file, lines, doc, data: undefined }, firstAlias?.range?.[0]);
    const kind = /Excessive alias count/.test(err.message)
      ? 'its aliases expand to too many nodes (a "billion laughs" document?)'
      : /Unresolved alias/.test(err.message)
        ? 'an alias (*name) whose anchor (&name) is not set before it'
        : opts.secretValues
          ? 'the document cannot be read'
          : err.message;
    throw new ErrorClass(`${where}: YAML error: ${kind}`);
  }
  return { file, lines, doc, data };
}

export function readYamlFile(
  file: string,
  what: string,
  ErrorClass: new (msg: string, hint?: string) => InputError,
  customTags: ScalarTag[] = [],
  opts: ParseOptions = {},
): LocatedYaml {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ErrorClass(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(err)}`);
  }
  return parseYaml(text, file, ErrorClass, customTags, opts);
}

/** "file:line:col" of an offset; 1:1 when the node has no position (an empty document). */
export function whereAt(src: LocatedYaml, offset: number | undefined): string {
  const { line, col } = src.lines.linePos(offset ?? 0);
  return `${src.file}:${line}:${col}`;
}

/** The YAML node at a path, or the nearest ancestor that exists. With unknownKey, the key node itself. */
export function nodeAt(doc: Document, p: ReadonlyArray<PropertyKey>, unknownKey?: string): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = doc.contents ?? undefined;
  const keys = unknownKey === undefined ? [...p] : [...p, unknownKey];
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(key));
      if (!pair) break;
      const last = i === keys.length - 1 && unknownKey !== undefined;
      node = last ? pair.key : pair.value;
      if (node) found = node as Node;
    } else if (isSeq(node) && typeof key === 'number') {
      node = node.items[key];
      if (node) found = node as Node;
    } else break;
  }
  return found;
}

/** "file:line:col" of the node at a path. */
export function whereIs(src: LocatedYaml, p: ReadonlyArray<PropertyKey>): string {
  return whereAt(src, nodeAt(src.doc, p)?.range?.[0]);
}

/** "file:line:col" of the key of the last path element (where a map entry starts), for errors about the entry itself. */
export function whereKey(src: LocatedYaml, p: ReadonlyArray<PropertyKey>): string {
  const last = p[p.length - 1];
  if (typeof last !== 'string') return whereIs(src, p);
  return whereAt(src, nodeAt(src.doc, p.slice(0, -1), last)?.range?.[0]);
}

/** A path as people write it: `hosts.web1.port`, `[0].tasks[2].file.path`. */
export function fieldName(p: ReadonlyArray<PropertyKey>): string {
  if (p.length === 0) return '(top level)';
  return p.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('');
}

/** The path of the innermost map entry or list item whose source covers offset (best effort, for YAML errors). */
export function pathAtOffset(doc: Document, offset: number): Array<string | number> {
  const out: Array<string | number> = [];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((it) => {
        const start = (it.key as Node | null)?.range?.[0];
        const end = (it.value as Node | null)?.range?.[2] ?? (it.key as Node | null)?.range?.[2];
        return start !== undefined && end !== undefined && start <= offset && offset <= end;
      });
      if (!pair || !isScalar(pair.key)) return out;
      out.push(String(pair.key.value));
      node = pair.value;
    } else if (isSeq(node)) {
      const i = node.items.findIndex((it) => {
        const r = (it as Node | null)?.range;
        return !!r && r[0] <= offset && offset <= r[2];
      });
      if (i < 0) return out;
      out.push(i);
      node = node.items[i];
    } else return out;
  }
}

/**
 * Where the top-level value whose source covers offset starts: for errors that must not point
 * inside a value (a secrets file is a flat map; a value that parses as a map or list is one value).
 */
function valueStartAtOffset(doc: Document, offset: number): number | undefined {
  const p = pathAtOffset(doc, offset);
  return p.length ? nodeAt(doc, p.slice(0, 1))?.range?.[0] : undefined;
}

/** The value at a path in plain data, and whether it is there at all. */
function valueAt(data: unknown, p: ReadonlyArray<PropertyKey>): { present: boolean; value: unknown } {
  let v: unknown = data;
  for (const k of p) {
    if (v === null || typeof v !== 'object' || !Object.prototype.hasOwnProperty.call(v, k as string)) return { present: false, value: undefined };
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return { present: true, value: v };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a map',
  record: 'a map',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

/** A zod issue's expected type in the words of a YAML file ("a map", "a list", …). */
export function expectedTypeName(expected: string): string {
  return TYPE_NAMES[expected] ?? expected;
}

export { editDistance };

/**
 * The issue worth reporting first. An unknown key beats the "missing field" it causes
 * (a typo `adress` also leaves `address` missing), so the user sees the typo itself.
 */
function pickIssue(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue {
  return issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
}

/** Among sibling "missing field" issues, the field a misspelt key was probably meant to be. */
function didYouMean(issues: readonly z.core.$ZodIssue[], parent: ReadonlyArray<PropertyKey>, key: string, data: unknown, prefix: PropertyKey[]): string | undefined {
  const same = (a: ReadonlyArray<PropertyKey>, b: ReadonlyArray<PropertyKey>) => a.length === b.length && a.every((k, i) => k === b[i]);
  let best: { name: string; d: number } | undefined;
  for (const i of issues) {
    if (i.code !== 'invalid_type' || i.path.length === 0) continue;
    const name = i.path[i.path.length - 1];
    if (typeof name !== 'string' || !same(i.path.slice(0, -1), parent)) continue;
    if (valueAt(data, [...prefix, ...i.path]).present) continue;
    const d = editDistance(key, name);
    if (d <= 2 && (!best || d < best.d)) best = { name, d };
  }
  return best?.name;
}

/** A schema failure as "file:line:col: field: what was expected". */
export function schemaError(src: LocatedYaml, issues: readonly z.core.$ZodIssue[], pathPrefix: PropertyKey[] = []): string {
  const issue = pickIssue(issues);
  const full = [...pathPrefix, ...issue.path];
  const { present, value } = valueAt(src.data, full);
  let where: string;
  let field = fieldName(full);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    field = fieldName([...full, key]);
    where = whereKey(src, [...full, key]);
    message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    const meant = issue.keys.length === 1 ? didYouMean(issues, issue.path, key, src.data, pathPrefix) : undefined;
    if (meant) message += ` (did you mean "${meant}"?)`;
  } else if (issue.code === 'invalid_key') {
    // A record key that fails its pattern: point at the key, and say what a key must look like.
    where = whereKey(src, full);
    message = `invalid name ${JSON.stringify(String(full[full.length - 1]))}: ${issue.issues[0]?.message ?? issue.message}`;
  } else if (issue.code === 'invalid_type') {
    where = whereIs(src, full);
    const expected = expectedTypeName(issue.expected);
    message = present ? `expected ${expected}, got ${describe(value)}` : `required (${expected})`;
  } else {
    where = whereIs(src, full);
    if (present && (value === null || typeof value !== 'object')) message += ` (got ${JSON.stringify(value)})`;
  }
  return `${where}: ${field}: ${message}`;
}

/** One schema issue as "file:line:col: field: what was expected". */
export function schemaErrorMessage(src: LocatedYaml, issue: z.core.$ZodIssue, pathPrefix: PropertyKey[] = []): string {
  return schemaError(src, [issue], pathPrefix);
}
