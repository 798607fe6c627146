import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { visit, type ScalarTag } from 'yaml';
import { InventoryError } from '../util/errors.js';
import { fieldName, parseYaml, pathAtOffset, whereAt, whereIs, whereKey, type LocatedYaml } from '../util/yaml.js';
import { Secret } from '../util/secrets.js';
import { isVaultText } from './vault/decrypt.js';
import type { VaultKeyring } from './vault/keyring.js';
import { Deferred, SecretText, UnsafeText, type VarDef, type VarLayer } from './vars/values.js';

/*
 * Vars from YAML: inventory files' vars, group_vars/ and host_vars/ files. Ansible's tags:
 * `!vault |` (an inline ansible-vault value: a Secret, decrypted when first read) and `!unsafe`
 * (a string never evaluated as a template). A whole file encrypted with ansible-vault is decrypted
 * when a host that reads it is first resolved; every string (and number) in it is a Secret.
 */

/** An inline `!vault` value as parsed; where it stands is filled in from the document. */
export class VaultRef {
  at = '';
  constructor(readonly text: string) {}
}

export const vaultTag: ScalarTag = { tag: '!vault', identify: (v) => v instanceof VaultRef, resolve: (s) => new VaultRef(s) };
export const unsafeTag: ScalarTag = { tag: '!unsafe', identify: (v) => v instanceof UnsafeText, resolve: (s) => new UnsafeText(s) };
export const ANSIBLE_TAGS = [vaultTag, unsafeTag];

/** Note where each !vault value stands ("file:line:col: field"), for its errors. */
export function locateVaultRefs(src: LocatedYaml): void {
  visit(src.doc, {
    Scalar(_key, node) {
      if (node.value instanceof VaultRef) {
        const offset = node.range?.[0] ?? 0;
        node.value.at = `${whereAt(src, offset)}: ${fieldName(pathAtOffset(src.doc, offset))}`;
      }
    },
  });
}

/** A var name as Ansible requires it (a Python identifier, ASCII). */
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Values as the resolver takes them: each !vault value a Deferred Secret, named after its var. */
export function withDeferredVault(v: unknown, keyring: VaultKeyring, name: string): unknown {
  if (v instanceof VaultRef) return new Deferred(() => new Secret(name, keyring.decrypt(v.text, v.at)));
  if (Array.isArray(v)) return v.map((x) => withDeferredVault(x, keyring, name));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withDeferredVault(x, keyring, name)]));
  }
  return v;
}

/**
 * The vars of a map in a YAML document (at `at`, a path), each with where its value stands.
 * Names must be var names (file:line:col of the key otherwise).
 */
export function varsOfMap(src: LocatedYaml, p: Array<string | number>, data: unknown, keyring: VaultKeyring, what = 'vars'): Map<string, VarDef> {
  const out = new Map<string, VarDef>();
  if (data === null || data === undefined) return out;
  if (typeof data !== 'object' || Array.isArray(data) || data instanceof VaultRef || data instanceof UnsafeText) {
    throw new InventoryError(`${whereIs(src, p)}: ${fieldName(p)}: ${what} are a map of name: value, got ${Array.isArray(data) ? 'a list' : typeof data === 'object' ? 'a tagged value' : typeof data}`);
  }
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (!VAR_NAME.test(k)) throw new InventoryError(`${whereKey(src, [...p, k])}: ${fieldName([...p, k])}: invalid name ${JSON.stringify(k)}: a var name is letters, digits and _`);
    out.set(k, { value: withDeferredVault(v, keyring, k), at: whereIs(src, [...p, k]) });
  }
  return out;
}

const VARS_EXTENSIONS = ['.yml', '.yaml', '.json'];

/**
 * The files of group_vars/NAME or host_vars/NAME, as Ansible finds them (DataLoader.find_vars_files):
 * NAME itself (a file, or a folder read recursively, in name order, skipping hidden files and
 * backups), else NAME.yml, NAME.yaml, NAME.json.
 */
export function varsFilesFor(dir: string, name: string): string[] {
  const base = path.join(dir, name);
  for (const candidate of [base, ...VARS_EXTENSIONS.map((e) => base + e)]) {
    if (!existsSync(candidate)) continue;
    return statSync(candidate).isDirectory() ? filesIn(candidate) : [candidate];
  }
  return [];
}

function filesIn(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    if (entry.startsWith('.') || entry.endsWith('~')) continue;
    const full = path.join(dir, entry);
    const ext = path.extname(entry);
    const st = statSync(full);
    if (st.isDirectory() && !ext) out.push(...filesIn(full));
    else if (st.isFile() && (!ext || VARS_EXTENSIONS.includes(ext))) out.push(full);
  }
  return out;
}

/** Every string and number in decrypted vars a secret (booleans and nulls say nothing worth hiding). */
function secretStrings(v: unknown, name: string): unknown {
  if (typeof v === 'string') return new SecretText(v);
  if (typeof v === 'number') return new SecretText(String(v));
  if (v instanceof UnsafeText) return new Secret(name, v.text);
  if (Array.isArray(v)) return v.map((x) => secretStrings(x, name));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, secretStrings(x, name)]));
  return v;
}

export interface VarsFileContext {
  keyring: VaultKeyring;
  /** Told the names of a file's vars once it is read (to warn about unknown ansible_* keys). */
  onVars?: (vars: ReadonlyMap<string, VarDef>) => void;
}

/**
 * One vars file as a layer. A plain file is read now, so its mistakes are found before anything
 * else happens; an encrypted one only when a host that uses it is resolved.
 */
export function varsFileLayer(file: string, ctx: VarsFileContext): VarLayer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InventoryError(`vars file ${file}: ${code === 'EACCES' ? 'permission denied' : (code ?? String(err))}`);
  }
  const read = (plain: string, encrypted: boolean): Map<string, VarDef> => {
    const src = parseYaml(plain, file, InventoryError, ANSIBLE_TAGS, { secretValues: encrypted });
    locateVaultRefs(src);
    if (src.data === null || src.data === undefined) return new Map();
    const vars = varsOfMap(src, [], src.data, ctx.keyring, 'the vars of a vars file');
    if (encrypted) for (const [name, def] of vars) def.value = secretStrings(def.value, name);
    ctx.onVars?.(vars);
    return vars;
  };
  if (!isVaultText(text)) {
    const vars = read(text, false);
    return () => vars;
  }
  let vars: Map<string, VarDef> | undefined;
  return () => (vars ??= read(ctx.keyring.decrypt(text, file), true));
}

/** The layers of group_vars/NAME (or host_vars/NAME) under a folder; none when it has no such files. */
export function varsLayersFor(dir: string, name: string, ctx: VarsFileContext): VarLayer[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return varsFilesFor(dir, name).map((f) => varsFileLayer(f, ctx));
}

