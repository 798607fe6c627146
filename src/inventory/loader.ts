import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { visit, type ScalarTag } from 'yaml';
import { fieldName, parseYaml, pathAtOffset, readYamlFile, schemaError, whereAt, whereIs, whereKey, type LocatedYaml } from '../util/yaml.js';
import { InventoryError } from '../util/errors.js';
import { Secret } from '../util/secrets.js';
import { inventorySchema, type ConnectionSettings, type RawInventory } from './schema.js';

export interface ResolvedConnection {
  user: string;
  port: number;
  identityFile?: string;
  agent?: string;
  knownHosts: string;
  acceptNewHostKeys: boolean;
  jump?: string;
  become: boolean;
  becomeUser: string;
  becomePasswordEnv?: string;
  connectTimeoutMs: number;
  /** Bound of each command that changes the host; undefined: the module's own (see transport/remote-command.ts). */
  commandTimeoutMs?: number;
  /** Bound of each batch of state reads; undefined: 60 s. */
  probeTimeoutMs?: number;
}

export interface Host {
  name: string;
  address: string;
  /** Every group the host is in, including ancestors and the implicit `all`. */
  groups: string[];
  vars: Record<string, unknown>;
  connection: ResolvedConnection;
}

export interface Inventory {
  name: string;
  file: string;
  hosts: Map<string, Host>;
  /** group name → host names (transitively through children), including `all`. */
  groups: Map<string, string[]>;
  secrets: Secret[];
}

class SecretRef {
  constructor(readonly name: string) {}
}

const secretTag: ScalarTag = {
  tag: '!secret',
  identify: (v) => v instanceof SecretRef,
  resolve: (str) => new SecretRef(str.trim()),
};

/** `--inventory prod` means inventory/prod.yml; a path (with / or .yml) is taken as it is. */
export function resolveInventoryPath(spec: string, cwd = process.cwd()): string {
  if (spec.includes('/') || /\.ya?ml$/.test(spec)) return path.resolve(cwd, spec);
  for (const ext of ['.yml', '.yaml']) {
    const p = path.resolve(cwd, 'inventory', spec + ext);
    if (existsSync(p)) return p;
  }
  return path.resolve(cwd, 'inventory', spec + '.yml');
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p;
}

/**
 * The secrets file as name → value. `at` is "file:line:col: field" of what made us read it
 * (the secrets_file key, or the first !secret), so errors about the file say where it came from.
 */
function loadSecrets(file: string, at: string): Map<string, string> {
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

export function secretEnvName(name: string): string {
  return 'PROVISION_SECRET_' + name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
}

export function loadInventory(spec: string, opts: LoadOptions = {}): Inventory {
  const file = resolveInventoryPath(spec);
  const env = opts.env ?? process.env;
  if (!existsSync(file)) {
    throw new InventoryError(`inventory ${file}: no such file`, '--inventory NAME reads inventory/NAME.yml; pass a path to use another file');
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InventoryError(`inventory ${file}: ${(err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : String(err)}`);
  }
  return parseInventory(text, file, env);
}

export function parseInventory(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Inventory {
  const src: LocatedYaml = parseYaml(text, file, InventoryError, [secretTag]);
  const { doc, data } = src;
  if (data === null || data === undefined) throw new InventoryError(`${whereAt(src, 0)}: (top level): the inventory is empty`, 'it needs at least a hosts: map');

  const parsed = inventorySchema.safeParse(data);
  if (!parsed.success) throw new InventoryError(schemaError(src, parsed.error.issues));
  const raw = parsed.data;
  const dir = path.dirname(file);
  const resolvePath = (p: string) => path.resolve(dir, expandHome(p));

  // Secrets: the secrets file (mode 0600) and PROVISION_SECRET_<NAME> environment variables (which win).
  const secretsFile = raw.secrets_file
    ? resolvePath(raw.secrets_file)
    : file.replace(/\.ya?ml$/, '') + '.secrets.yml';
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
  const fileSecrets = loadSecrets(secretsFile, secretsAt);
  const secrets: Secret[] = [];
  const secretCache = new Map<string, Secret>();
  let secretError: InventoryError | undefined;
  visit(doc, {
    Scalar(_key, node) {
      if (!(node.value instanceof SecretRef) || secretError) return;
      const name = node.value.name;
      if (secretCache.has(name)) return;
      const at = `${whereAt(src, node.range?.[0])}: ${fieldName(pathAtOffset(doc, node.range?.[0] ?? 0))}`;
      const fromEnv = env[secretEnvName(name)];
      const value = fromEnv ?? fileSecrets.get(name);
      if (value === undefined) {
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
      secretCache.set(name, s);
      secrets.push(s);
    },
  });
  if (secretError) throw secretError;
  const swapSecrets = (v: unknown): unknown => {
    if (v instanceof SecretRef) return secretCache.get(v.name);
    if (Array.isArray(v)) return v.map(swapSecrets);
    if (v && typeof v === 'object' && !(v instanceof Secret)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, swapSecrets(x)]));
    }
    return v;
  };

  const locate = (p: Array<string | number>) => `${whereIs(src, p)}: ${fieldName(p)}`;
  const locateKey = (p: Array<string | number>) => `${whereKey(src, p)}: ${fieldName(p)}`;
  return buildInventory(raw, file, resolvePath, { locate, locateKey }, swapSecrets, secrets);
}

function buildInventory(
  raw: RawInventory,
  file: string,
  resolvePath: (p: string) => string,
  /** "file:line:col: field" of a path: of its value, or (locateKey) of its key. */
  { locate, locateKey }: { locate: (p: Array<string | number>) => string; locateKey: (p: Array<string | number>) => string },
  swapSecrets: (v: unknown) => unknown,
  secrets: Secret[],
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
  const ancestors = (g: string, seen: string[] = []): string[] => {
    if (seen.includes(g)) {
      // seen runs child → parent; print the cycle parent → child, as the children: lists read.
      const cycle = [...seen.slice(seen.indexOf(g)), g].reverse();
      throw new InventoryError(`${locateKey(['groups', cycle[0]!, 'children'])}: children form a cycle (${cycle.join(' → ')})`);
    }
    const ps = parents.get(g) ?? [];
    return [...ps, ...ps.flatMap((p) => ancestors(p, [...seen, g]))];
  };
  // Every group, not only those with hosts: a cycle among empty groups is still a mistake.
  for (const g of Object.keys(rawGroups)) ancestors(g);
  const depth = (g: string): number => Math.max(0, ...(parents.get(g) ?? []).map((p) => depth(p) + 1));

  const hostGroups = new Map<string, string[]>();
  for (const h of hostNames) {
    const mine = [...direct.entries()].filter(([, hs]) => hs.has(h)).map(([g]) => g);
    const all = new Set<string>(mine);
    for (const g of mine) for (const a of ancestors(g)) all.add(a);
    all.delete('all');
    // Parents before children, so a child group's vars and settings win over its parent's.
    hostGroups.set(h, ['all', ...[...all].sort((a, b) => depth(a) - depth(b) || a.localeCompare(b))]);
  }

  const groups = new Map<string, string[]>();
  groups.set('all', [...hostNames]);
  for (const g of direct.keys()) groups.set(g, hostNames.filter((h) => hostGroups.get(h)!.includes(g)));

  const hosts = new Map<string, Host>();
  /** Where each host's jump setting came from (the nearest of defaults, groups, host), for errors. */
  const jumpFrom = new Map<string, Array<string | number>>();
  for (const h of hostNames) {
    let from: Array<string | number> | undefined = raw.defaults?.jump !== undefined ? ['defaults', 'jump'] : undefined;
    const def = raw.hosts[h] ?? ({ address: h } as NonNullable<RawInventory['hosts'][string]>);
    const gs = hostGroups.get(h)!;
    let vars: Record<string, unknown> = { ...(raw.vars ?? {}) };
    let conn: ConnectionSettings = { ...(raw.defaults ?? {}) };
    for (const g of gs) {
      const gd = rawGroups[g];
      if (!gd) continue;
      const { hosts: _h, children: _c, vars: gv, ...gconn } = gd;
      vars = { ...vars, ...(gv ?? {}) };
      conn = { ...conn, ...gconn };
      if (gconn.jump !== undefined) from = ['groups', g, 'jump'];
    }
    if (def.jump !== undefined) from = ['hosts', h, 'jump'];
    if (from) jumpFrom.set(h, from);
    const { address, groups: _g, vars: hv, ...hconn } = def;
    vars = { ...vars, ...(hv ?? {}) };
    conn = { ...conn, ...hconn };
    vars = swapSecrets(vars) as Record<string, unknown>;
    hosts.set(h, { name: h, address, groups: gs, vars, connection: resolveConnection(conn, resolvePath) });
  }
  for (const host of hosts.values()) {
    const jump = host.connection.jump;
    if (!jump) continue;
    const at = locate(jumpFrom.get(host.name) ?? ['hosts', host.name]);
    if (!hosts.has(jump) && !/^([^@\s]+@)?[^@\s:]+(:\d+)?$/.test(jump)) {
      throw new InventoryError(`${at}: "${jump}" is neither an inventory host nor [user@]address[:port]`);
    }
    if (jump === host.name) throw new InventoryError(`${at}: host ${host.name} cannot jump through itself`);
  }
  const name = path.basename(file).replace(/\.ya?ml$/, '');
  return { name, file, hosts, groups, secrets };
}

function resolveConnection(c: ConnectionSettings, resolvePath: (p: string) => string): ResolvedConnection {
  const agent = c.ssh_agent === true ? process.env.SSH_AUTH_SOCK : typeof c.ssh_agent === 'string' ? resolvePath(c.ssh_agent) : undefined;
  return {
    user: c.user ?? process.env.USER ?? 'root',
    port: c.port ?? 22,
    identityFile: c.identity_file ? resolvePath(c.identity_file) : undefined,
    agent: agent ?? (c.ssh_agent === undefined && !c.identity_file ? process.env.SSH_AUTH_SOCK : undefined),
    knownHosts: c.known_hosts ? resolvePath(c.known_hosts) : path.join(homedir(), '.ssh', 'known_hosts'),
    acceptNewHostKeys: c.accept_new_host_keys ?? false,
    jump: c.jump,
    become: c.become ?? false,
    becomeUser: c.become_user ?? 'root',
    becomePasswordEnv: c.become_password_env,
    connectTimeoutMs: (c.connect_timeout ?? 10) * 1000,
    commandTimeoutMs: c.command_timeout === undefined ? undefined : c.command_timeout * 1000,
    probeTimeoutMs: c.probe_timeout === undefined ? undefined : c.probe_timeout * 1000,
  };
}
