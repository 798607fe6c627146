// Ansible's module names and parameters, translated to ours at load time, so a simple Ansible role
// runs unchanged — or stops before any connection with one line naming what is not supported.
// One table: each entry names the Ansible spellings of a module of ours and how each Ansible
// parameter maps onto our params. Nothing is ever dropped silently.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isScalar } from 'yaml';
import type { z } from 'zod';
import { PlaybookError } from '../util/errors.js';
import { nodeAt, whereIs, whereKey, type LocatedYaml } from '../util/yaml.js';
import { getModule } from './registry.js';

type Path = Array<string | number>;

/** What a task's module key resolves to: our module, our params, and where each param was written. */
export interface ModuleCall {
  /** The key as written: "ansible.builtin.apt", "apt", "mysql_db". */
  readonly key: string;
  /** Our module's name. */
  readonly module: string;
  readonly params: unknown;
  /** The YAML path, from the task, where a path inside our params was written (for file:line:col). */
  source(p: ReadonlyArray<PropertyKey>): Path;
}

/** How the value of one Ansible parameter becomes ours. */
interface ParamRule {
  /** Our param (default: the same name). */
  to?: string;
  kind?: 'bool' | 'int' | 'list' | 'mode' | 'string';
  /** A value check or mapping of its own; throws a message naming what is accepted. */
  map?: (v: unknown) => unknown;
}

interface Spelling {
  readonly module: string;
  /** The Ansible parameters accepted, by Ansible's name (aliases included). */
  readonly params: Readonly<Record<string, ParamRule>>;
  /** A plain string instead of a map ("command: ls -l") goes to this param. */
  readonly freeForm?: string;
  /** Local files (FQCN only): a relative path is looked up as Ansible does, in FOLDER/ beside the playbook, then beside it. */
  readonly localFile?: { param: string; folder: string };
  /** Ansible's defaults where they differ from ours, filled in for the FQCN spelling only. */
  readonly ansibleDefaults?: (given: Record<string, unknown>) => Record<string, unknown>;
  /** Our params from the renamed ones, when ours are shaped differently (ufw: one rule per task). */
  readonly shape?: (renamed: Record<string, unknown>) => { params: Record<string, unknown>; moved: Array<[Path, string]> };
  /** Bare names that are also ours take our own params too (ufw's bare name is ours alone). */
  readonly bare: boolean;
  readonly fqcn: string[];
}

const ownerParams: Record<string, ParamRule> = { mode: { kind: 'mode' }, owner: {}, group: {} };
const writeParams: Record<string, ParamRule> = { ...ownerParams, backup: { kind: 'bool' }, validate: {} };

/** Ansible's force: yes is what our copy and template always do; force: no (create only) is not supported. */
const forceYesOnly: ParamRule = {
  kind: 'bool',
  map: (v) => {
    if (v === false) throw new Error('only force: true (always write) is supported');
    return undefined;
  },
};

const SPELLINGS: Spelling[] = [
  {
    module: 'apt',
    bare: true,
    fqcn: ['ansible.builtin.apt'],
    params: {
      name: { to: 'packages', kind: 'list' },
      pkg: { to: 'packages', kind: 'list' },
      package: { to: 'packages', kind: 'list' },
      packages: { kind: 'list' },
      state: {},
      update_cache: { kind: 'bool' },
      'update-cache': { to: 'update_cache', kind: 'bool' },
      cache_valid_time: { kind: 'int' },
      install_recommends: { kind: 'bool' },
      'install-recommends': { to: 'install_recommends', kind: 'bool' },
      purge: { kind: 'bool' },
      lock_timeout: { kind: 'int' },
    },
    // Ansible refreshes the lists only when asked (update_cache, or cache_valid_time), and then
    // whenever they are older than cache_valid_time (default 0: every install).
    ansibleDefaults: (g) => (g.update_cache === undefined && g.cache_valid_time === undefined ? { update_cache: false } : g.update_cache === true && g.cache_valid_time === undefined ? { cache_valid_time: 0 } : {}),
  },
  {
    module: 'service',
    bare: true,
    fqcn: ['ansible.builtin.service', 'ansible.builtin.systemd', 'ansible.builtin.systemd_service', 'systemd', 'systemd_service'],
    params: {
      name: {},
      unit: { to: 'name' },
      state: {},
      enabled: { kind: 'bool' },
      daemon_reload: { kind: 'bool' },
      'daemon-reload': { to: 'daemon_reload', kind: 'bool' },
    },
  },
  {
    module: 'file',
    bare: true,
    fqcn: ['ansible.builtin.file'],
    params: { path: {}, dest: { to: 'path' }, name: { to: 'path' }, state: {}, src: {}, ...ownerParams },
  },
  {
    module: 'copy',
    bare: true,
    fqcn: ['ansible.builtin.copy'],
    params: { src: {}, dest: {}, content: {}, force: forceYesOnly, ...writeParams },
    localFile: { param: 'src', folder: 'files' },
  },
  {
    module: 'template',
    bare: true,
    fqcn: ['ansible.builtin.template'],
    params: { src: {}, dest: {}, force: forceYesOnly, ...writeParams },
    localFile: { param: 'src', folder: 'templates' },
  },
  {
    module: 'lineinfile',
    bare: true,
    fqcn: ['ansible.builtin.lineinfile'],
    params: {
      path: {},
      dest: { to: 'path' },
      destfile: { to: 'path' },
      name: { to: 'path' },
      regexp: {},
      regex: { to: 'regexp' },
      line: {},
      value: { to: 'line' },
      state: {},
      insertafter: {},
      insertbefore: {},
      create: { kind: 'bool' },
      ...writeParams,
    },
  },
  {
    module: 'user',
    bare: true,
    fqcn: ['ansible.builtin.user'],
    params: {
      name: {},
      state: {},
      uid: { kind: 'int' },
      group: {},
      groups: { kind: 'list' },
      append: { kind: 'bool' },
      home: {},
      shell: {},
      system: { kind: 'bool' },
      create_home: { kind: 'bool' },
      createhome: { to: 'create_home', kind: 'bool' },
      remove: { kind: 'bool' },
      password_lock: { to: 'password_locked', kind: 'bool' },
    },
    // Ansible's user sets exactly `groups` unless told to append; ours appends by default.
    ansibleDefaults: (g) => (g.groups !== undefined && g.append === undefined ? { append: false } : {}),
  },
  {
    module: 'group',
    bare: true,
    fqcn: ['ansible.builtin.group'],
    params: { name: {}, state: {}, gid: { kind: 'int' }, system: { kind: 'bool' } },
  },
  {
    module: 'command',
    bare: true,
    fqcn: ['ansible.builtin.command', 'ansible.builtin.shell', 'shell'],
    freeForm: 'cmd',
    params: { cmd: {}, creates: {}, removes: {}, chdir: {}, stdin: {} },
  },
  {
    module: 'ufw',
    bare: false,
    fqcn: ['community.general.ufw'],
    params: {
      state: { map: oneOf(['enabled', 'disabled', 'reset']) },
      policy: { map: oneOf(['allow', 'deny', 'reject']) },
      default: { to: 'policy', map: oneOf(['allow', 'deny', 'reject']) },
      direction: { map: (v) => ({ in: 'incoming', out: 'outgoing' })[String(v)] ?? oneOf(['incoming', 'outgoing', 'routed', 'in', 'out'])(v) },
      logging: { map: (v) => (v === true || v === 'on' ? 'low' : v === false ? 'off' : v) },
      rule: {},
      port: { kind: 'string' },
      to_port: { to: 'port', kind: 'string' },
      proto: {},
      protocol: { to: 'proto' },
      from_ip: { to: 'from' },
      from: {},
      src: { to: 'from' },
      to_ip: { to: 'to' },
      to: {},
      dest: { to: 'to' },
      comment: {},
    },
    shape: ufwShape,
  },
];

function oneOf(values: string[]) {
  return (v: unknown) => {
    if (typeof v === 'string' && values.includes(v)) return v;
    throw new Error(`${JSON.stringify(v)} is not supported (supported: ${values.join(', ')})`);
  };
}

/** Ansible's ufw takes one rule, or one setting, per task; ours takes the settings and a list of rules. */
function ufwShape(r: Record<string, unknown>): { params: Record<string, unknown>; moved: Array<[Path, string]> } {
  const params: Record<string, unknown> = {};
  const moved: Array<[Path, string]> = [];
  if (r.state !== undefined) params.state = r.state;
  if (r.logging !== undefined) params.logging = r.logging;
  if (r.policy !== undefined) {
    // As `ufw default deny` without a direction: incoming.
    const direction = String(r.direction ?? 'incoming');
    params[`default_${direction}`] = r.policy;
    moved.push([[`default_${direction}`], 'policy']);
  } else if (r.direction !== undefined && !(r.rule !== undefined && r.direction === 'incoming')) {
    // Our rules are incoming rules.
    throw new Error(`direction ${String(r.direction)} is supported with policy only (a rule here is an incoming rule)`);
  }
  const ruleKeys = ['rule', 'port', 'proto', 'from', 'to', 'comment'].filter((k) => r[k] !== undefined);
  if (ruleKeys.length) {
    if (r.rule === undefined) throw new Error(`${ruleKeys.join(', ')} needs rule (allow, deny, limit or reject)`);
    // "any" is every address: our rule says so by leaving the side out.
    const rule = Object.fromEntries(ruleKeys.filter((k) => !((k === 'from' || k === 'to') && r[k] === 'any')).map((k) => [k, r[k]]));
    params.rules = [rule];
    for (const k of ruleKeys) moved.push([['rules', 0, k], k]);
  }
  return { params, moved };
}

/** Ansible's truth values (module_utils/parsing/convert_bool.py), as YAML 1.2 leaves them: strings. */
const TRUE = new Set(['yes', 'on', 'true', 'y', '1', 't']);
const FALSE = new Set(['no', 'off', 'false', 'n', '0', 'f']);

function convert(kind: ParamRule['kind'], v: unknown, raw: string | undefined): unknown {
  const templated = typeof v === 'string' && v.includes('{{');
  if (templated) return v;
  switch (kind) {
    case 'bool':
      if (typeof v === 'string' && TRUE.has(v.toLowerCase())) return true;
      if (typeof v === 'string' && FALSE.has(v.toLowerCase())) return false;
      return v;
    case 'int':
      return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    case 'list':
      return typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
    case 'string':
      return typeof v === 'number' ? String(v) : v;
    case 'mode':
      // YAML 1.2 reads `mode: 0644` as the number 644; Ansible (YAML 1.1) reads it as octal. The
      // text as written says what was meant. A bare number without its leading 0 is refused.
      if (typeof v !== 'number') return v;
      if (raw !== undefined && /^0[0-7]{3,4}$/.test(raw)) return raw;
      throw new Error(`write the mode as a quoted octal string ("0644"): ${raw ?? v} is read as a decimal number`);
    default:
      return v;
  }
}

/** Ansible's old `key=value key=value` form of a module's params. */
function keyValues(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\S+?)=("[^"]*"|'[^']*'|\S*)/g)) out[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2');
  const rest = text.replace(/(\S+?)=("[^"]*"|'[^']*'|\S*)/g, '').trim();
  return rest === '' && Object.keys(out).length ? out : undefined;
}

/** Ansible pulls these out of a free-form command wherever they stand ("cmd creates=/x"). */
const COMMAND_INLINE = /(^|\s+)(creates|removes|chdir)=("[^"]*"|'[^']*'|\S+)/g;

const byName = new Map<string, { spelling: Spelling; fqcn: boolean }>();
for (const s of SPELLINGS) {
  if (s.bare) byName.set(s.module, { spelling: s, fqcn: false });
  for (const n of s.fqcn) byName.set(n, { spelling: s, fqcn: n.includes('.') });
}

/** Every Ansible module name accepted (for help and "unknown module" hints). */
export function ansibleModuleNames(): string[] {
  return [...byName.keys()].filter((n) => !getModule(n)).sort();
}

function ourParams(module: string): string[] {
  const schema = getModule(module)?.schema as z.ZodType & { shape?: Record<string, unknown> };
  return Object.keys(schema?.shape ?? {});
}

/**
 * The module a task names and its params, in our terms. `task` is the task as written (the module
 * key and, for Ansible's `args:`, extra params); `at` is the task's path in `src`.
 */
export function resolveModuleCall(task: Record<string, unknown>, key: string, src: LocatedYaml, at: Path, opts: { inRole?: boolean } = {}): ModuleCall {
  const entry = byName.get(key);
  const written = task[key];
  if (!entry) return { key, module: key, params: written, source: (p) => [key, ...p.map((k) => (typeof k === 'symbol' ? String(k) : k))] };
  const { spelling, fqcn } = entry;
  const fail = (p: Path, message: string, onKey = false): never => {
    const full = [...at, ...p];
    throw new PlaybookError(`${onKey ? whereKey(src, full) : whereIs(src, full)}: ${key}: ${message}`);
  };

  // The params as written, and where each was written: the module's map, or a string, plus `args:`.
  const given: Array<{ name: string; value: unknown; from: Path }> = [];
  if (typeof written === 'string') {
    if (spelling.freeForm) {
      let cmd = written;
      for (const m of written.matchAll(COMMAND_INLINE)) given.push({ name: m[2]!, value: m[3]!.replace(/^(["'])(.*)\1$/, '$2'), from: [key] });
      cmd = cmd.replace(COMMAND_INLINE, '').trim();
      given.push({ name: spelling.freeForm, value: cmd, from: [key] });
    } else {
      const kv = keyValues(written);
      if (!kv) fail([key], 'expected a map of parameters (or Ansible\'s "key=value key=value" form)');
      for (const [name, value] of Object.entries(kv!)) given.push({ name, value, from: [key] });
    }
  } else if (written && typeof written === 'object' && !Array.isArray(written)) {
    for (const [name, value] of Object.entries(written)) given.push({ name, value, from: [key, name] });
  } else if (written !== null && written !== undefined) {
    fail([key], 'expected a map of parameters');
  }
  const args = task.args;
  if (args !== undefined) {
    if (!args || typeof args !== 'object' || Array.isArray(args)) fail(['args'], 'args: expected a map of parameters');
    for (const [name, value] of Object.entries(args as object)) given.push({ name, value, from: ['args', name] });
  }

  const ours = spelling.bare && !fqcn ? ourParams(spelling.module) : [];
  const supported = [...new Set([...Object.keys(spelling.params), ...ours])];
  const renamed: Record<string, unknown> = {};
  const origin: Array<[Path, Path]> = [];
  for (const g of given) {
    // A bare name is ours too: a key neither spelling knows is left for our schema to name ("did you mean …").
    const rule = spelling.params[g.name] ?? (ours.includes(g.name) || !fqcn ? {} : undefined);
    if (!rule) {
      fail(g.from, `parameter "${g.name}" is not supported (supported: ${supported.join(', ')})`, g.from.length > 1);
    }
    const to = rule!.to ?? g.name;
    if (to in renamed) fail(g.from, `"${g.name}" sets ${to} a second time: give one of them`, g.from.length > 1);
    const node = nodeAt(src.doc, [...at, ...g.from]);
    const raw = g.from.length > 1 && isScalar(node) ? (node as { source?: string }).source : undefined;
    let value: unknown;
    try {
      value = convert(rule!.kind, g.value, raw);
      if (rule!.map) value = rule!.map(value);
    } catch (err) {
      fail(g.from, `${g.name}: ${(err as Error).message}`);
    }
    if (value === undefined) continue;
    renamed[to] = value;
    origin.push([[to], g.from]);
  }
  // Ansible's spelling in a playbook: files/ (templates/) next to it, then its own folder. In a role,
  // the loader looks in the role's files/ (templates/) for every spelling.
  if (fqcn && spelling.localFile && !opts.inRole) {
    const { param, folder } = spelling.localFile;
    const v = renamed[param];
    if (typeof v === 'string' && !path.isAbsolute(v) && !v.includes('{{')) {
      const dir = path.dirname(src.file);
      const inFolder = path.join(dir, folder, v);
      renamed[param] = existsSync(inFolder) ? inFolder : path.join(dir, v);
    }
  }
  if (fqcn && spelling.ansibleDefaults) Object.assign(renamed, spelling.ansibleDefaults(renamed));
  let params = renamed;
  if (spelling.shape) {
    try {
      const shaped = spelling.shape(renamed);
      params = shaped.params;
      for (const [to, fromName] of shaped.moved) {
        const from = origin.find(([p]) => p[0] === fromName)?.[1];
        if (from) origin.push([to, from]);
      }
    } catch (err) {
      fail([key], (err as Error).message);
    }
  }
  return {
    key,
    module: spelling.module,
    params,
    source(keys) {
      const p = keys.map((k) => (typeof k === 'symbol' ? String(k) : k));
      // The longest of our paths that p starts with, and where its value was written.
      let best: [Path, Path] | undefined;
      for (const o of origin) {
        if (o[0].every((k, i) => p[i] === k) && (!best || o[0].length > best[0].length)) best = o;
      }
      if (!best) return [key, ...p];
      // A param's own value in the YAML keeps the rest of the path; a free-form string has no inside.
      return best[1].length > 1 ? [...best[1], ...p.slice(best[0].length)] : best[1];
    },
  };
}
