import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { InventoryError } from '../util/errors.js';
import { parseYaml } from '../util/yaml.js';
import { buildAnsibleInventory } from './ansible/build.js';
import { parseIni } from './ansible/ini.js';
import { AnsibleModel } from './ansible/model.js';
import { parseAnsibleYaml } from './ansible/yaml.js';
import { LoadContext } from './context.js';
import type { Inventory, LoadOptions } from './model.js';
import { parseNativeInventory } from './native.js';
import { isVaultText } from './vault/decrypt.js';
import { ANSIBLE_TAGS, locateVaultRefs } from './vars-files.js';

export type { Host, Inventory, LoadOptions, ResolvedConnection } from './model.js';
export { secretEnvName } from './native.js';

/*
 * `--inventory` takes a native inventory, an Ansible inventory file (INI or YAML), or an Ansible
 * inventory directory. How a file's format is told (README "Inventory"):
 *   - .ini / .cfg, or no extension and not YAML of either shape below: Ansible INI;
 *   - .yml / .yaml / .json (or no extension) whose top level has `hosts:` and no `all:`: native;
 *   - other YAML: Ansible's YAML format (`all:`, or group names holding hosts:/children:/vars:).
 * A directory is read as Ansible reads an inventory directory: every file in it (in name order;
 * not hidden ones, backups, *.md/*.txt/*.rst/*.ini/*.cfg/*.retry/*.orig/…; nor group_vars/,
 * host_vars/), each as INI or YAML, all into one inventory, with group_vars/ and host_vars/ of
 * the directory. A native inventory cannot be part of a directory.
 */

/**
 * `--inventory prod` means inventory/prod.yml (or .yaml); failing those, inventory/prod (an Ansible
 * inventory file or directory). A path (with a /, or ending in .yml/.yaml) is taken as it is.
 */
export function resolveInventoryPath(spec: string, cwd = process.cwd()): string {
  if (spec.includes('/') || /\.ya?ml$/.test(spec)) return path.resolve(cwd, spec);
  for (const candidate of [`${spec}.yml`, `${spec}.yaml`, spec]) {
    const p = path.resolve(cwd, 'inventory', candidate);
    if (existsSync(p)) return p;
  }
  return path.resolve(cwd, 'inventory', spec + '.yml');
}

/** Ansible's defaults for an inventory directory: files it never reads as inventories. */
const IGNORED_IN_DIRECTORY = /^\.|^(host_vars|group_vars|vars_plugins)$|(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.ini|\.cfg|\.retry)$/;

export type InventoryFormat = 'native' | 'ansible-yaml' | 'ansible-ini';

const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Which format a file is in (the rule above). Reads YAML leniently: errors are the chosen parser's to report. */
export function detectFormat(file: string, text: string): InventoryFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.ini' || ext === '.cfg') return 'ansible-ini';
  const yamlExt = ['.yml', '.yaml', '.json'].includes(ext);
  let data: unknown;
  let yamlOk = false;
  try {
    const doc = parseDocument(text, { customTags: [...ANSIBLE_TAGS, { tag: '!secret', resolve: (s: string) => s }] });
    yamlOk = doc.errors.length === 0;
    if (yamlOk) data = doc.toJS({ maxAliasCount: 100 });
  } catch {
    yamlOk = false;
  }
  const nativeShape = isMap(data) && 'hosts' in data && !('all' in data);
  if (yamlExt) return !yamlOk || data === null || data === undefined || !isMap(data) || nativeShape ? 'native' : 'ansible-yaml';
  // No (or another) extension: YAML only when it has one of the two YAML shapes, else INI.
  if (yamlOk && isMap(data)) {
    if (nativeShape) return 'native';
    const groupShaped = Object.values(data).every((v) => v === null || (isMap(v) && Object.keys(v).every((k) => ['hosts', 'children', 'vars'].includes(k))));
    if ('all' in data || groupShaped) return 'ansible-yaml';
  }
  return 'ansible-ini';
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InventoryError(`inventory ${file}: ${code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : String(err)}`);
  }
}

/** The format of an inventory file; an encrypted one is refused (its structure would need the password before anything else). */
function formatOf(file: string, text: string): InventoryFormat {
  if (isVaultText(text)) {
    throw new InventoryError(`${file}: an inventory file encrypted with ansible-vault is not read`, 'encrypt group_vars/host_vars files, or single values with ansible-vault encrypt_string, instead');
  }
  return detectFormat(file, text);
}

function readAnsibleFile(file: string, text: string, format: 'ansible-yaml' | 'ansible-ini', model: AnsibleModel, ctx: LoadContext): void {
  if (format === 'ansible-ini') return parseIni(text, file, model);
  const src = parseYaml(text, file, InventoryError, ANSIBLE_TAGS);
  locateVaultRefs(src);
  if (src.data === null || src.data === undefined) throw new InventoryError(`${file}:1:1: (top level): the inventory is empty`);
  parseAnsibleYaml(src, model, ctx.keyring);
}

function loadDirectory(dir: string, ctx: LoadContext): Inventory {
  const model = new AnsibleModel();
  const files: string[] = [];
  const collect = (d: string) => {
    for (const entry of readdirSync(d).sort()) {
      if (IGNORED_IN_DIRECTORY.test(entry)) continue;
      const full = path.join(d, entry);
      if (statSync(full).isDirectory()) collect(full);
      else files.push(full);
    }
  };
  collect(dir);
  if (files.length === 0) throw new InventoryError(`inventory ${dir}: a directory with no inventory file in it`, 'an Ansible inventory directory holds INI or YAML inventory files (and group_vars/, host_vars/)');
  for (const file of files) {
    const text = readText(file);
    const format = formatOf(file, text);
    if (format === 'native') {
      throw new InventoryError(`${file}: a native inventory cannot be part of an inventory directory`, `pass it alone: --inventory ${file}`);
    }
    readAnsibleFile(file, text, format, model, ctx);
  }
  return buildAnsibleInventory(model, { file: dir, baseDir: dir }, ctx);
}

export function loadInventory(spec: string, opts: LoadOptions = {}): Inventory {
  const file = resolveInventoryPath(spec);
  if (!existsSync(file)) {
    throw new InventoryError(`inventory ${file}: no such file`, '--inventory NAME reads inventory/NAME.yml; pass a path to use another file');
  }
  const ctx = new LoadContext(opts);
  if (statSync(file).isDirectory()) return loadDirectory(file, ctx);
  const text = readText(file);
  const format = formatOf(file, text);
  if (format === 'native') return parseNativeInventory(text, file, ctx);
  const model = new AnsibleModel();
  readAnsibleFile(file, text, format, model, ctx);
  return buildAnsibleInventory(model, { file, baseDir: path.dirname(file) }, ctx);
}

/** A native inventory from its text (as loadInventory reads the file). */
export function parseInventory(text: string, file: string, env: NodeJS.ProcessEnv = process.env, opts: LoadOptions = {}): Inventory {
  return parseNativeInventory(text, file, new LoadContext({ ...opts, env }));
}
