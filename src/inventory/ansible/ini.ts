import { InventoryError } from '../../util/errors.js';
import { shlexSplit } from '../shlex.js';
import { VAR_NAME } from '../vars-files.js';
import { expandHostPattern, HostPatternError } from './host-pattern.js';
import type { AnsibleModel } from './model.js';
import { parsePythonLiteral } from './pyliteral.js';

/*
 * Ansible's INI inventory (plugins/inventory/ini.py):
 *   host lines before any section are "ungrouped"; [group] lists hosts (`name[:port] key=value …`,
 *   split as shlex splits them, # starting a comment); [group:vars] holds `key=value` lines;
 *   [group:children] names child groups, which may be declared later in the file.
 * Values are read as Python literals when they are one (`8080`, `True`, `"a b"`, `[1, 2]`), else as
 * the text. Errors name file:line.
 */

/** INI values: a Python literal's value, else the text as written. */
export function iniValue(text: string): unknown {
  const r = parsePythonLiteral(text);
  return r.ok ? r.value : text;
}

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:#.*)?$/;

export function parseIni(text: string, file: string, model: AnsibleModel): void {
  let group = 'ungrouped';
  let state: 'hosts' | 'vars' | 'children' = 'hosts';
  /** Groups named in [x:vars] or as a child before they are declared: line of first mention. */
  const pending = new Map<string, { line: number; kind: 'vars' | 'children'; parent?: string }>();
  // Groups of files read before this one (an inventory directory) are declared already.
  const declared = new Set<string>(model.groups.keys());
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const at = `${file}:${lineNo}`;
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;

    const section = SECTION.exec(line);
    if (section) {
      group = section[1]!;
      const kind = section[2] ?? 'hosts';
      if (kind !== 'hosts' && kind !== 'vars' && kind !== 'children') {
        throw new InventoryError(`${at}: section [${section[1]}:${kind}] has an unknown type "${kind}" (hosts, vars or children)`);
      }
      state = kind;
      if (kind === 'vars') {
        // [g:vars] alone does not declare g: it must be declared somewhere in the file.
        if (!declared.has(group) && !pending.has(group)) pending.set(group, { line: lineNo, kind: 'vars' });
        model.group(group, at);
      } else {
        model.group(group, at);
        declared.add(group);
        pending.delete(group);
      }
      return;
    }
    if (line.startsWith('[') && line.endsWith(']')) {
      throw new InventoryError(`${at}: invalid section "${line}" (no spaces inside the brackets; [group], [group:vars] or [group:children])`);
    }

    if (state === 'hosts') {
      const tokens = shlexSplit(line, { comments: true });
      if (!tokens) throw new InventoryError(`${at}: cannot split this host line (an unclosed quote?)`);
      if (tokens.length === 0) return;
      let expanded: { hosts: string[]; port?: number };
      try {
        expanded = expandHostPattern(tokens[0]!);
      } catch (err) {
        if (err instanceof HostPatternError) throw new InventoryError(`${at}: ${err.message}`);
        throw err;
      }
      const vars: Array<[string, unknown]> = [];
      for (const t of tokens.slice(1)) {
        const eq = t.indexOf('=');
        if (eq < 0) throw new InventoryError(`${at}: expected key=value after the host name, got "${t}"`);
        const key = t.slice(0, eq);
        if (!VAR_NAME.test(key)) throw new InventoryError(`${at}: invalid var name ${JSON.stringify(key)}: a var name is letters, digits and _`);
        vars.push([key, iniValue(t.slice(eq + 1))]);
      }
      for (const name of expanded.hosts) {
        if (name === '---') throw new InventoryError(`${at}: "---" is not a host (is this file YAML?)`);
        const host = model.host(name, group, at);
        if (expanded.port !== undefined) host.vars.set('ansible_port', { value: expanded.port, at });
        for (const [k, v] of vars) host.vars.set(k, { value: v, at });
      }
      declared.add(group);
    } else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) throw new InventoryError(`${at}: expected key=value in [${group}:vars], got "${line}"`);
      const key = line.slice(0, eq).trim();
      if (!VAR_NAME.test(key)) throw new InventoryError(`${at}: invalid var name ${JSON.stringify(key)}: a var name is letters, digits and _`);
      model.group(group, at).vars.set(key, { value: iniValue(line.slice(eq + 1).trim()), at });
    } else {
      const m = GROUP_NAME.exec(line);
      if (!m) throw new InventoryError(`${at}: expected a group name in [${group}:children], got "${line}"`);
      const child = m[1]!;
      model.child(group, child, at);
      if (!declared.has(child) && !pending.has(child)) pending.set(child, { line: lineNo, kind: 'children', parent: group });
      if (!model.groups.has(child)) model.group(child, at);
    }
  });
  for (const [name, p] of pending) {
    if (declared.has(name)) continue;
    if (p.kind === 'vars') throw new InventoryError(`${file}:${p.line}: [${name}:vars] is for a group that is not declared in this file`);
    throw new InventoryError(`${file}:${p.line}: [${p.parent}:children] names "${name}", which is not declared (as [${name}] or [${name}:children])`);
  }
}
