import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node, type ScalarTag } from 'yaml';
import type { z } from 'zod';
import { InputError } from './errors.js';

/** A parsed YAML file that remembers where every node came from, for errors that name file:line:col. */
export interface LocatedYaml {
  file: string;
  lines: LineCounter;
  doc: Document;
  data: unknown;
}

export function parseYaml(
  text: string,
  file: string,
  ErrorClass: new (msg: string, hint?: string) => InputError,
  customTags: ScalarTag[] = [],
): LocatedYaml {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, customTags, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const { line, col } = lines.linePos(e.pos[0]);
    throw new ErrorClass(`${file}:${line}:${col}: YAML syntax error: ${e.message.split('\n')[0]}`);
  }
  return { file, lines, doc, data: doc.toJS() };
}

export function readYamlFile(
  file: string,
  what: string,
  ErrorClass: new (msg: string, hint?: string) => InputError,
  customTags: ScalarTag[] = [],
): LocatedYaml {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ErrorClass(`${what} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(err)}`);
  }
  return parseYaml(text, file, ErrorClass, customTags);
}

/** "file:line:col" of an offset. */
export function whereAt(src: LocatedYaml, offset: number | undefined): string {
  if (offset === undefined) return src.file;
  const { line, col } = src.lines.linePos(offset);
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

function typeName(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** One schema issue as "file:line:col: field: what was expected". */
export function schemaErrorMessage(src: LocatedYaml, issue: z.core.$ZodIssue, pathPrefix: PropertyKey[] = []): string {
  const full = [...pathPrefix, ...issue.path];
  let field = full.map(String).join('.') || '(top level)';
  let message = issue.message;
  let unknownKey: string | undefined;
  if (issue.code === 'unrecognized_keys') {
    unknownKey = issue.keys[0];
    field = [...full.map(String), unknownKey].join('.');
    message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  } else if (issue.code === 'invalid_type') {
    message = `expected ${issue.expected}, got ${typeName(issue.input)}`;
  }
  const node = nodeAt(src.doc, full, unknownKey);
  return `${whereAt(src, node?.range?.[0])}: ${field}: ${message}`;
}
