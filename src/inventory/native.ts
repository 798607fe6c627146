import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { visit, type ScalarTag } from 'yaml';
import { fieldName, parseYaml, pathAtOffset, readYamlFile, schemaError, whereAt, whereIs, whereKey, type LocatedYaml } from '../util/yaml.js';
import { InventoryError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import { expandHome, resolveConnection } from './connection.js';
import type { LoadContext } from './context.js';
import { GroupCycle, resolveMembership } from './groups.js';
import type { Host, Inventory } from './model.js';
import { inventorySchema, type ConnectionSettings, type RawInventory } from './schema.js';
import { runSecretsCommand, secretsCommandArgv } from './secrets-command.js';
import { ANSIBLE_TAGS, locateVaultRefs, varsLayersFor, withDeferredVault } from './vars-files.js';
import { VarScope } from './vars/resolver.js';
import { Deferred, type VarDef, type VarLayer } from './vars/values.js';

/*
 * The native inventory format (README "Inventory"): hosts with address, groups with children,
 * vars, connection settings in defaults < group < host, secrets as `!secret NAME`.
 */

class SecretRef {
  constructor(readonly name: string) {}
}

/** A `!secret NAME` value as the inventory's YAML is read (src/inventory/loader.ts tells formats by it). */
export const isSecretRef = (v: unknown): boolean => v instanceof SecretRef;

const secretTag: ScalarTag = {
  tag: '!secret',
  identify: (v) => v instanceof SecretRef,
  resolve: (str) => new SecretRef(str.trim()),
};

/** The tags of a native inventory's YAML. */
const NATIVE_TAGS = [secretTag, ...ANSIBLE_TAGS];

export function secretEnvName(name: string): string {
  return 'PROVISION_SECRET_' + name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

/**
 * The secrets file as name → value. `at` is "file:line:col: field" of what made us read it
 * (the secrets_file key, or the first !secret), so errors about the file say where it came from.
 */
function loadSecretsFile(file: string, at: string): Map<string, string> {
  const out = new Map<string, string>();
  // A missing file is fine when every secret comes from the environment (CI, a vault wrapper);
  // a secret found in neither place is the error, and it names both.
  if (!existsSync(file)) return out;
  const st = statSync(file);
  if ((st.mode & 0o077) !== 0) {
    throw new InventoryError(
      `${at}: secrets file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, expected 0600)`,
      `run: chmod 600 ${file}`,
    );
  }
  // Its values are secrets: a YAML error names the place and the kind of mistake, never the text.
  const src = readYamlFile(file, 'secrets file', InventoryError, [], { secretValues: true });
  const data = src.data ?? {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new InventoryError(`${whereAt(src, 0)}: (top level): a secrets file is a map of name: value, got ${Array.isArray(data) ? 'a list' : typeof data}`);
  }
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new InventoryError(`${whereIs(src, [k])}: ${k}: a secret is a string, got ${v === null ? 'nothing' : Array.isArray(v) ? 'a list' : typeof v}`);
    }
    out.set(k, String(v));
  }
  return out;
}

/**
 * An inventory file read as YAML with the native format's tags: the loader reads a file once, tells
 * its format from it and, when it is native, hands it to parseNativeInventory. Throws a located error.
 */
export function readNativeYaml(text: string, file: string): LocatedYaml {
  return parseYaml(text, file, InventoryError, NATIVE_TAGS);
}

/** A native inventory from its YAML, as read by readNativeYaml (once: the loader told its format from it). */
export function parseNativeInventory(src: LocatedYaml, ctx: LoadContext): Inventory {
  const { doc, data } = src;
  const file = src.file;
  if (data === null || data === undefined) throw new InventoryError(`${whereAt(src, 0)}: (top level): the inventory is empty`, 'it needs at least a hosts: map');

  const parsed = inventorySchema.safeParse(data);
  if (!parsed.success) throw new InventoryError(schemaError(src, parsed.error.issues));
  const raw = parsed.data;
  const dir = path.dirname(file);
  const resolvePath = (p: string) => path.resolve(dir, expandHome(p));
  locateVaultRefs(src);

  if (raw.secrets_command !== undefined && !secretsCommandArgv(raw.secrets_command, 'x')) {
    throw new InventoryError(`${whereIs(src, ['secrets_command'])}: secrets_command: cannot split it into words (an unclosed quote?)`);
  }

  // Secrets: the secrets file (mode 0600) and PROVISION_SECRET_<NAME> environment variables (which win),
  // then secrets_command for what neither has, run when a selected host's vars read the secret.
  const secretsFile = raw.secrets_file ? resolvePath(raw.secrets_file) : file.replace(/\.ya?ml$/, '') + '.secrets.yml';
  // Errors about the secrets file point at what made us read it: the secrets_file key, else the first !secret.
  let firstRef: number | undefined;
  visit(doc, {
    Scalar(_key, node) {
      if (node.value instanceof SecretRef && firstRef === undefined) firstRef = node.range?.[0] ?? 0;
    },
  });
  const secretsAt =
    raw.secrets_file !== undefined
      ? `${whereIs(src, ['secrets_file'])}: secrets_file`
      : `${whereAt(src, firstRef)}: ${firstRef === undefined ? '(top level)' : fieldName(pathAtOffset(doc, firstRef))}`;
  const fileSecrets = loadSecretsFile(secretsFile, secretsAt);
  const secretValues = new Map<string, Secret | Deferred>();
  let secretError: InventoryError | undefined;
  visit(doc, {
    Scalar(_key, node) {
      if (!(node.value instanceof SecretRef) || secretError) return;
      const name = node.value.name;
      if (secretValues.has(name)) return;
      const at = `${whereAt(src, node.range?.[0])}: ${fieldName(pathAtOffset(doc, node.range?.[0] ?? 0))}`;
      const fromEnv = ctx.env[secretEnvName(name)];
      const value = fromEnv ?? fileSecrets.get(name);
      if (value === undefined) {
        if (raw.secrets_command !== undefined) {
          const command = raw.secrets_command;
          secretValues.set(
            name,
            new Deferred(() => {
              const s = runSecretsCommand(command, name, at);
              ctx.addSecret(s);
              return s;
            }),
          );
          return;
        }
        secretError = new InventoryError(
          `${at}: secret "${name}" is not defined (${existsSync(secretsFile) ? `not in ${secretsFile}` : `${secretsFile} does not exist`}, and $${secretEnvName(name)} is not set)`,
          `set it in ${path.relative(process.cwd(), secretsFile) || secretsFile} (mode 0600) or in $${secretEnvName(name)}`,
        );
        return;
      }
      if (value.length < 8) {
        secretError = new InventoryError(`${at}: secret "${name}" is shorter than 8 characters (from ${fromEnv !== undefined ? `$${secretEnvName(name)}` : secretsFile})`);
        return;
      }
      const s = new Secret(name, value);
      secretValues.set(name, s);
      ctx.addSecret(s);
    },
  });
  if (secretError) throw secretError;
  const toValue = (v: unknown, name: string): unknown => {
    if (v instanceof SecretRef) return secretValues.get(v.name);
    if (Array.isArray(v)) return v.map((x) => toValue(x, name));
    if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toValue(x, name)]));
    }
    return withDeferredVault(v, ctx.keyring, name);
  };

  const locate = (p: Array<string | number>) => `${whereIs(src, p)}: ${fieldName(p)}`;
  const locateKey = (p: Array<string | number>) => `${whereKey(src, p)}: ${fieldName(p)}`;
  /** A vars map of the file as a layer: each var with where its value stands. */
  const layerOf = (vars: Record<string, unknown> | undefined, p: Array<string | number>): VarLayer => {
    const defs = new Map<string, VarDef>();
    for (const [k, v] of Object.entries(vars ?? {})) defs.set(k, { value: toValue(v, k), at: whereIs(src, [...p, k]) });
    return () => defs;
  };
  return buildInventory(raw, file, resolvePath, { locate, locateKey }, layerOf, ctx);
}

function buildInventory(
  raw: RawInventory,
  file: string,
  resolvePath: (p: string) => string,
  /** "file:line:col: field" of a path: of its value, or (locateKey) of its key. */
  { locate, locateKey }: { locate: (p: Array<string | number>) => string; locateKey: (p: Array<string | number>) => string },
  layerOf: (vars: Record<string, unknown> | undefined, p: Array<string | number>) => VarLayer,
  ctx: LoadContext,
): Inventory {
  const hostNames = Object.keys(raw.hosts);
  if (hostNames.length === 0) throw new InventoryError(`${locateKey(['hosts'])}: the inventory has no hosts`);
  const rawGroups = raw.groups ?? {};
  if ('all' in rawGroups && rawGroups.all?.hosts) {
    throw new InventoryError(`${locateKey(['groups', 'all', 'hosts'])}: every host is in "all" already`);
  }

  // Direct membership: group.hosts lists and host.groups lists.
  const direct = new Map<string, Set<string>>();
  const ensure = (g: string) => direct.get(g) ?? direct.set(g, new Set()).get(g)!;
  for (const [g, def] of Object.entries(rawGroups)) {
    ensure(g);
    (def?.hosts ?? []).forEach((h, i) => {
      if (!(h in raw.hosts)) throw new InventoryError(`${locate(['groups', g, 'hosts', i])}: unknown host "${h}"`);
      ensure(g).add(h);
    });
  }
  for (const [h, def] of Object.entries(raw.hosts)) {
    for (const g of def?.groups ?? []) ensure(g).add(h);
    if (h in rawGroups || h === 'all') throw new InventoryError(`${locateKey(['hosts', h])}: "${h}" is also a group name`, 'hosts and groups share one namespace (for --limit and hosts:)');
  }
  for (const [h, def] of Object.entries(raw.hosts)) {
    (def?.groups ?? []).forEach((g, i) => {
      if (g in raw.hosts) throw new InventoryError(`${locate(['hosts', h, 'groups', i])}: "${g}" is a host, not a group`);
    });
  }

  // Children: transitive, cycles refused.
  const parents = new Map<string, string[]>();
  for (const [g, def] of Object.entries(rawGroups)) {
    (def?.children ?? []).forEach((c, i) => {
      if (!direct.has(c)) throw new InventoryError(`${locate(['groups', g, 'children', i])}: unknown group "${c}"`);
      parents.set(c, [...(parents.get(c) ?? []), g]);
    });
  }
  let membership;
  try {
    membership = resolveMembership({ hosts: hostNames, direct, parents });
  } catch (err) {
    if (err instanceof GroupCycle) throw new InventoryError(`${locateKey(['groups', err.cycle[0]!, 'children'])}: ${err.message}`);
    throw err;
  }
  const { hostGroups, groups } = membership;

  // Vars: vars < groups (parents first) < group_vars/ files < the host's < host_vars/ files, as Ansible orders them.
  const scope = new VarScope({ hostGroups, groups, onSecret: (s) => ctx.addSecret(s) });
  const dir = path.dirname(file);
  const filesOpts = { keyring: ctx.keyring };
  const groupFiles = new Map<string, VarLayer[]>();
  const groupVarsFiles = (g: string) => groupFiles.get(g) ?? groupFiles.set(g, varsLayersFor(path.join(dir, 'group_vars'), g, filesOpts)).get(g)!;
  const topLayer = layerOf(raw.vars, ['vars']);
  const groupLayers = new Map(Object.entries(rawGroups).map(([g, def]) => [g, layerOf(def?.vars, ['groups', g, 'vars'])]));

  const sshConfig = ctx.sshConfig(raw.ssh_config, path.dirname(file));
  const hosts = new Map<string, Host>();
  for (const h of hostNames) {
    /** Where the host's jump setting came from (the nearest of defaults, groups, host), for errors. */
    let jumpFrom: Array<string | number> | undefined = raw.defaults?.jump !== undefined ? ['defaults', 'jump'] : undefined;
    const def = raw.hosts[h] ?? ({ address: h } as NonNullable<RawInventory['hosts'][string]>);
    const gs = hostGroups.get(h)!;
    let conn: ConnectionSettings = { ...(raw.defaults ?? {}) };
    const layers: VarLayer[] = [topLayer];
    for (const g of gs) {
      const gd = rawGroups[g];
      if (!gd) continue;
      const { hosts: _h, children: _c, vars: _v, ...gconn } = gd;
      layers.push(groupLayers.get(g)!);
      conn = { ...conn, ...gconn };
      if (gconn.jump !== undefined) jumpFrom = ['groups', g, 'jump'];
    }
    for (const g of gs) layers.push(...groupVarsFiles(g));
    if (def.jump !== undefined) jumpFrom = ['hosts', h, 'jump'];
    const { address, groups: _g, vars: _hv, ...hconn } = def;
    layers.push(layerOf(def.vars, ['hosts', h, 'vars']), ...varsLayersFor(path.join(dir, 'host_vars'), h, filesOpts));
    conn = { ...conn, ...hconn };
    const resolved = resolveConnection({
      name: h,
      address,
      settings: conn,
      resolvePath,
      sshConfig,
      isInventoryHost: (n) => n in raw.hosts,
      jumpAt: () => locate(jumpFrom ?? ['hosts', h]),
      envChannel: ctx.channel,
    });
    hosts.set(h, { name: h, address: resolved.address, groups: gs, vars: scope.add(h, layers).vars, connection: resolved.connection });
  }
  const name = path.basename(file).replace(/\.ya?ml$/, '');
  return { name, file, hosts, groups, secrets: ctx.secrets, warnings: ctx.warnings, varSource: (h, n) => scope.source(h, n) };
}
