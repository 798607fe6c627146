import { InventoryError } from '../../util/errors.js';
import { Secret } from '../../util/secrets.js';
import { evaluateTemplate, isTemplateText, TemplateFailure, type Lookup } from './template.js';
import { Deferred, SecretText, UnsafeText, type VarDef, type VarLayer } from './values.js';

/*
 * Host vars as Ansible resolves them: per host, lazily, with the host's full var set. A host's
 * sources (layers) are merged on first read, in precedence order, a later source replacing a var
 * of an earlier one; a var's value is worked out on first read (a template evaluated, a vault value
 * decrypted, a secrets_command run) and kept. `host.vars` is a view that does this as roles read it,
 * so a vault file or secret that nothing reads is never opened.
 */

export interface VarScopeInit {
  /** host → its groups, `all` first. */
  hostGroups: ReadonlyMap<string, string[]>;
  /** group → its hosts. */
  groups: ReadonlyMap<string, string[]>;
  /** Vars that host.vars leaves out (Ansible's ansible_* connection vars); templates still see them. */
  hidden?: (name: string) => boolean;
  /** Told of each Secret made while resolving (a decrypted file's value, a template that read a secret). */
  onSecret?: (s: Secret) => void;
}

interface Frame {
  host: string;
  name: string;
  at: string;
}

export class VarScope {
  readonly hosts = new Map<string, HostVars>();
  readonly #resolving: Frame[] = [];
  #hostvars?: Record<string, unknown>;

  constructor(readonly init: VarScopeInit) {}

  add(host: string, layers: VarLayer[]): HostVars {
    const hv = new HostVars(this, host, layers);
    this.hosts.set(host, hv);
    return hv;
  }

  /** Ansible's `hostvars`: every host's vars, each resolved when read. */
  get hostvars(): Record<string, unknown> {
    this.#hostvars ??= lazyRecord(
      () => [...this.hosts.keys()],
      (h) => this.hosts.has(h),
      (h) => this.hosts.get(h)!.all,
    );
    return this.#hostvars;
  }

  /** Run fn as the resolution of host's var; a var that (through others) needs itself is a cycle. */
  within<T>(frame: Frame, fn: () => T): T {
    const i = this.#resolving.findIndex((f) => f.host === frame.host && f.name === frame.name);
    if (i >= 0) {
      const loop = [...this.#resolving.slice(i), frame];
      const oneHost = loop.every((f) => f.host === frame.host);
      const chain = loop.map((f) => (oneHost ? f.name : `${f.host}:${f.name}`)).join(' → ');
      const first = loop[0]!;
      throw new InventoryError(`${first.at}: ${first.name}: vars form a cycle (${chain})${oneHost ? ` (host ${first.host})` : ''}`);
    }
    this.#resolving.push(frame);
    try {
      return fn();
    } finally {
      this.#resolving.pop();
    }
  }
}

export class HostVars {
  #defs?: Map<string, VarDef>;
  readonly #values = new Map<string, unknown>();
  /** The vars as roles and tasks see them, each resolved when read. */
  readonly vars: Record<string, unknown>;
  /** Every var, the hidden ones too (what templates and connection settings read). */
  readonly all: Record<string, unknown>;

  constructor(
    private readonly scope: VarScope,
    readonly host: string,
    private readonly layers: VarLayer[],
  ) {
    const hidden = scope.init.hidden ?? (() => false);
    this.vars = lazyRecord(
      () => [...this.defs().keys()].filter((k) => !hidden(k)),
      (k) => !hidden(k) && this.defs().has(k),
      (k) => this.get(k),
      (k, v) => this.set(k, v),
    );
    this.all = lazyRecord(
      () => [...this.defs().keys()],
      (k) => this.defs().has(k),
      (k) => this.get(k),
    );
  }

  /** Every var's definition, the sources merged (decrypting vault files among them). */
  defs(): Map<string, VarDef> {
    if (!this.#defs) {
      const merged = new Map<string, VarDef>();
      for (const layer of this.layers) for (const [k, d] of layer()) merged.set(k, d);
      this.#defs = merged;
    }
    return this.#defs;
  }

  def(name: string): VarDef | undefined {
    return this.defs().get(name);
  }

  has(name: string): boolean {
    return this.defs().has(name);
  }

  /** A var's value, resolved; undefined when the host has no such var. */
  get(name: string): unknown {
    if (this.#values.has(name)) return this.#values.get(name);
    const def = this.def(name);
    if (!def) return undefined;
    const value = this.scope.within({ host: this.host, name, at: def.at }, () => {
      try {
        return this.resolve(def.value, name);
      } catch (err) {
        if (err instanceof TemplateFailure) throw new InventoryError(`${def.at}: ${name}: ${err.message} (host ${this.host})`);
        throw err;
      }
    });
    this.#values.set(name, value);
    return value;
  }

  private set(name: string, value: unknown): void {
    this.defs().set(name, { value, at: '(set at run time)' });
    this.#values.set(name, value);
  }

  /** What a template on this host sees: Ansible's magic vars, then the host's vars. */
  private readonly lookup: Lookup = (name) => {
    switch (name) {
      case 'inventory_hostname':
        return { found: true, value: this.host };
      case 'inventory_hostname_short':
        return { found: true, value: this.host.split('.')[0] };
      case 'group_names':
        return { found: true, value: (this.scope.init.hostGroups.get(this.host) ?? []).filter((g) => g !== 'all').sort() };
      case 'groups':
        return { found: true, value: Object.fromEntries([...this.scope.init.groups].map(([g, hs]) => [g, [...hs]])) };
      case 'hostvars':
        return { found: true, value: this.scope.hostvars };
    }
    return this.has(name) ? { found: true, value: this.get(name) } : { found: false };
  };

  private resolve(v: unknown, name: string): unknown {
    if (v instanceof Secret) return v;
    if (v instanceof Deferred) return this.resolve(v.resolve(), name);
    if (v instanceof UnsafeText) return v.text;
    if (v instanceof SecretText) return this.made(isTemplateText(v.text) ? evaluateTemplate(v.text, this.lookup, name, true) : new Secret(name, v.text));
    if (typeof v === 'string') return isTemplateText(v) ? this.made(evaluateTemplate(v, this.lookup, name)) : v;
    if (Array.isArray(v)) return v.map((x) => this.resolve(x, name));
    if (isPlain(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, this.resolve(x, name)]));
    return v;
  }

  /** Report the Secrets a value holds (to the inventory's list). */
  private made<T>(value: T): T {
    const report = this.scope.init.onSecret;
    if (report) forEachSecret(value, report);
    return value;
  }
}

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

function forEachSecret(v: unknown, fn: (s: Secret) => void): void {
  if (v instanceof Secret) fn(v);
  else if (Array.isArray(v)) v.forEach((x) => forEachSecret(x, fn));
  else if (isPlain(v)) Object.values(v).forEach((x) => forEachSecret(x, fn));
}

/**
 * A plain-looking object whose properties are computed when read: it spreads, iterates, compares
 * and serialises like the plain object of its resolved vars.
 */
function lazyRecord(
  keys: () => string[],
  has: (k: string) => boolean,
  get: (k: string) => unknown,
  set?: (k: string, v: unknown) => void,
): Record<string, unknown> {
  return new Proxy({} as Record<string, unknown>, {
    get: (target, k, receiver) => (typeof k === 'string' && has(k) ? get(k) : Reflect.get(target, k, receiver)),
    has: (target, k) => (typeof k === 'string' && has(k)) || Reflect.has(target, k),
    ownKeys: () => keys(),
    getOwnPropertyDescriptor: (_target, k) => (typeof k === 'string' && has(k) ? { value: get(k), writable: true, enumerable: true, configurable: true } : undefined),
    set: (_target, k, v) => {
      if (!set || typeof k !== 'string') return false;
      set(k, v);
      return true;
    },
    defineProperty: () => false,
    deleteProperty: () => false,
  });
}
