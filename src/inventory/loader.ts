import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InventoryError } from '../util/errors.js';
import { parseYaml, type LocatedYaml } from '../util/yaml.js';
import { buildAnsibleInventory } from './ansible/build.js';
import { parseIni } from './ansible/ini.js';
import { AnsibleModel } from './ansible/model.js';
import { parseAnsibleYaml } from './ansible/yaml.js';
import { LoadContext } from './context.js';
import type { Inventory, LoadOptions } from './model.js';
import { isSecretRef, parseNativeInventory, readNativeYaml } from './native.js';
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

// A `!secret` value is no map: it was a plain string when formats were told by a parse of their own.
const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v) && !isSecretRef(v);

/**
 * The file read as YAML once (with the native format's tags), or undefined when it is no valid YAML:
 * its format is told from this, and a native inventory (the common case) is parsed from it without
 * reading the text again. Errors are the chosen parser's to report.
 */
function readYamlLeniently(file: string, text: string): LocatedYaml | undefined {
  try {
    return readNativeYaml(text, file);
  } catch {
    return undefined;
  }
}

/** Which format a file is in (the rule above). */
export function detectFormat(file: string, text: string): InventoryFormat {
  return formatOfYaml(file, () => readYamlLeniently(file, text));
}

/** The rule above, from the file's YAML (read only when the extension does not already say INI). */
function formatOfYaml(file: string, readYaml: () => LocatedYaml | undefined): InventoryFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.ini' || ext === '.cfg') return 'ansible-ini';
  const yamlExt = ['.yml', '.yaml', '.json'].includes(ext);
  const yaml = readYaml();
  const yamlOk = yaml !== undefined;
  const data = yaml?.data;
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

/** An inventory file as read: its format, and its YAML when it was read as YAML without error. */
interface InventoryFile {
  file: string;
  text: string;
  format: InventoryFormat;
  yaml: LocatedYaml | undefined;
}

/** Reads a file's YAML once, for its format and its parser; an encrypted one is refused (its structure would need the password before anything else). */
function readInventoryFile(file: string): InventoryFile {
  const text = readText(file);
  if (isVaultText(text)) {
    throw new InventoryError(`${file}: an inventory file encrypted with ansible-vault is not read`, 'encrypt group_vars/host_vars files, or single values with ansible-vault encrypt_string, instead');
  }
  let yaml: LocatedYaml | undefined;
  const format = formatOfYaml(file, () => (yaml = readYamlLeniently(file, text)));
  return { file, text, format, yaml };
}

/** A native inventory: from the YAML already read, or (invalid YAML) read again for its located error. */
function readNative({ file, text, yaml }: InventoryFile, ctx: LoadContext): Inventory {
  return parseNativeInventory(yaml ?? readNativeYaml(text, file), ctx);
}

function readAnsibleFile({ file, text, format, yaml }: InventoryFile, model: AnsibleModel, ctx: LoadContext): void {
  if (format === 'ansible-ini') return parseIni(text, file, model);
  // The YAML already read serves unless it has `!secret`, a tag of the native format only: Ansible's
  // YAML reads it as an unknown tag (a plain string), so such a file is read again without it.
  const src = yaml && !text.includes('!secret') ? yaml : parseYaml(text, file, InventoryError, ANSIBLE_TAGS);
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
    const read = readInventoryFile(file);
    if (read.format === 'native') {
      throw new InventoryError(`${file}: a native inventory cannot be part of an inventory directory`, `pass it alone: --inventory ${file}`);
    }
    readAnsibleFile(read, model, ctx);
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
  const read = readInventoryFile(file);
  if (read.format === 'native') return readNative(read, ctx);
  const model = new AnsibleModel();
  readAnsibleFile(read, model, ctx);
  return buildAnsibleInventory(model, { file, baseDir: path.dirname(file) }, ctx);
}

/** A native inventory from its text (as loadInventory reads the file). */
export function parseInventory(text: string, file: string, env: NodeJS.ProcessEnv = process.env, opts: LoadOptions = {}): Inventory {
  return parseNativeInventory(readNativeYaml(text, file), new LoadContext({ ...opts, env }));
}
