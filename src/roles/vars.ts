import { z } from 'zod';
import { isAnyAddress, parseNetwork } from '../modules/lib/cidr.js';
import { Secret } from '../util/secrets.js';

/*
 * The kinds of var roles take (a port, a DNS name, a secret…), each with its check and its message
 * written once, and the vars several roles share (SHARED): one definition each, picked by every
 * role that reads it, so the roles can disagree neither on a default nor on what is valid.
 */

/** A value as an error message may show it: never a secret, never a whole map or list. */
export function shown(v: unknown): string {
  if (v instanceof Secret) return 'a !secret';
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  return JSON.stringify(v);
}

/** A var's default: the value its `.default()` gives, undefined when it has none (optional or required). */
export function defaultOf(schema: z.ZodType): unknown {
  const def = schema._zod.def as { type: string; defaultValue?: unknown };
  return def.type === 'default' ? structuredCloneSafe(def.defaultValue) : undefined;
}
/** Defaults are plain data (a list, a map): a copy, so nobody changes the schema's own. */
const structuredCloneSafe = (v: unknown) => (v !== null && typeof v === 'object' ? structuredClone(v) : v);

type Message = string | ((input: unknown) => string);
const errorOf = (m: Message) => (iss: { input?: unknown }) => (typeof m === 'string' ? m : m(iss.input));

/** Metadata the documentation reads: the type in words, and the default in words where it is computed. */
export interface VarDoc {
  type?: string;
  defaultText?: string;
}
/** A schema with its type (and default) in words for the documentation, where the kinds below do not fit. */
export const doc = <T extends z.ZodType>(schema: T, meta: VarDoc): T => schema.meta(meta as Record<string, unknown>) as T;

/** A value of a base type that must also pass `ok`; every failure (wrong type or not ok) says `message`. */
function checked<T extends z.ZodType>(base: T, ok: (v: z.output<T>) => boolean, message: Message, type: string): T {
  return doc(base.refine((v) => ok(v as z.output<T>), { error: errorOf(message) }) as unknown as T, { type });
}

export function port(): z.ZodNumber {
  const m = (v: unknown) => `a TCP port (1-65535), got ${shown(v)}`;
  return checked(z.number({ error: errorOf(m) }), (n) => Number.isInteger(n) && n >= 1 && n <= 65535, m, 'port (1-65535)');
}

/** A whole number from min (to max); the message says so unless the role words it itself. */
export function wholeNumber(min: number, max?: number, message?: Message): z.ZodNumber {
  const range = max === undefined ? `≥ ${min}` : `from ${min} to ${max}`;
  const m = message ?? ((v: unknown) => `a whole number ${range}, got ${shown(v)}`);
  return checked(z.number({ error: errorOf(m) }), (n) => Number.isInteger(n) && n >= min && (max === undefined || n <= max), m, `whole number ${range}`);
}

/** A number (not necessarily whole) from min; the message says so unless the role words it itself. */
export function numberFrom(min: number, message?: Message): z.ZodNumber {
  const m = message ?? ((v: unknown) => `a number ≥ ${min}, got ${shown(v)}`);
  return checked(z.number({ error: errorOf(m) }), (n) => n >= min, m, `number ≥ ${min}`);
}

export function bool(message?: Message): z.ZodBoolean {
  const m = message ?? ((v: unknown) => `true or false, got ${shown(v)}`);
  return doc(z.boolean({ error: errorOf(m) }), { type: 'true/false' });
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T, message?: Message): z.ZodEnum<{ [K in T[number]]: K }> {
  const m = message ?? ((v: unknown) => `one of ${values.join(', ')}, got ${shown(v)}`);
  return doc(z.enum(values, { error: errorOf(m) }), { type: values.map((v) => `\`${v}\``).join(' | ') }) as z.ZodEnum<{ [K in T[number]]: K }>;
}

/** A string matching a pattern (or passing a test), with the role's own words for what it must be. */
export function text(test: RegExp | ((s: string) => boolean), message: Message, type = 'string'): z.ZodString {
  const ok = typeof test === 'function' ? test : (s: string) => test.test(s);
  return checked(z.string({ error: errorOf(message) }), ok, message, type);
}

/** A list of strings each passing a test; one message for the whole list. */
export function stringList(test: RegExp | ((s: string) => boolean), message: Message, type: string, opts: { nonEmpty?: boolean } = {}): z.ZodArray<z.ZodString> {
  const ok = typeof test === 'function' ? test : (s: string) => test.test(s);
  return checked(
    z.array(z.string({ error: errorOf(message) }), { error: errorOf(message) }),
    (l) => (!opts.nonEmpty || l.length > 0) && l.every(ok),
    message,
    type,
  );
}

const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isHostname(s: string): boolean {
  return s.length <= 253 && s.split('.').length >= 2 && s.split('.').every((l) => LABEL.test(l));
}

export function hostname(): z.ZodString {
  return text(isHostname, (v) => `a fully qualified DNS name like www.example.com, got ${shown(v)}`, 'DNS name');
}

/** An IP address, a CIDR network, or "any". */
export function isAddress(s: unknown): boolean {
  return typeof s === 'string' && (isAnyAddress(s) || parseNetwork(s) !== undefined);
}

/** A non-empty list of addresses or networks: each bad entry named by its index; `why` says what an empty list would break. */
function addressList(why: string): z.ZodArray<z.ZodString> {
  const empty = `must list at least one address or network${why}`;
  const entry = z.string().refine(isAddress, { error: (iss) => `${shown(iss.input)} is not an IP address or CIDR network` });
  return doc(z.array(entry, { error: empty }).min(1, { error: empty }), { type: 'list of addresses or CIDR networks' });
}

export const MYSQL_NAME = /^[A-Za-z0-9_]{1,32}$/;
/** A MySQL database or user name (and the app's system user): no quoting is ever needed. */
export const mysqlName = () => text(MYSQL_NAME, 'letters, digits and _ only, 1 to 32 characters', 'name (letters, digits, _; 1-32)');

/** A Secret from the inventory (`!secret NAME`), never a value in clear. */
export function secret(name: string): z.ZodType<Secret> {
  const m = (v: unknown) =>
    v === undefined ? `required, as a !secret (${name}: !secret ${name})` : `must be a !secret (${name}: !secret ${name}), not a value in clear`;
  // abort: false, so the role's rules across vars still run and every problem is listed at once.
  return doc(z.custom<Secret>((v) => v instanceof Secret, { error: errorOf(m), abort: false }), { type: '!secret' });
}

export const absolutePath = (message: Message = (v) => `an absolute path, got ${shown(v)}`) => text((s) => s.startsWith('/'), message, 'absolute path');

/**
 * The vars several roles read. A role picks them (`pick('domain', 'http_port')`); a role may describe
 * one in its own words (`shared('http_port', 'the port the load balancers use')`), never check it differently.
 */
export const SHARED = {
  domain: hostname()
    .default('www.example.com')
    .describe("The site's DNS name: the certificate's name, Nginx's server_name and site file, HAProxy's health-check Host."),
  // Required, no default: an empty list would lock everybody out (or leave every exporter unreachable).
  admin_cidrs: addressList(' (e.g. [203.0.113.5/32]): without it nobody could SSH in once ufw is on').describe(
    'Who may SSH in (the control machine, bastions) and reach Prometheus.',
  ),
  monitoring_cidrs: addressList(': without it no exporter can be scraped').describe('Who may scrape the exporters (the monitoring side).'),
  ssh_port: port().default(22).describe('Port sshd listens on.'),
  http_port: port().default(80).describe('HTTP: public on the load balancers, on the private address of the web servers.'),
  https_port: port().default(443).describe('HTTPS on the load balancers.'),
  app_port: port().default(3000).describe('The application, on 127.0.0.1 of the web servers.'),
  mysql_port: port().default(3306).describe('Port the database server listens on and the replica connects to.'),
  node_exporter_port: port().default(9100).describe('The node exporter, on every host.'),
  haproxy_exporter_port: port().default(8405).describe("HAProxy's Prometheus endpoint on the load balancers."),
  nginx_exporter_port: port().default(9113).describe('The Nginx exporter, on the web servers.'),
  mysqld_exporter_port: port().default(9104).describe('The MySQL exporter, on the database hosts.'),
  prometheus_port: port().default(9090).describe('Prometheus, on the monitoring host (open to `admin_cidrs`).'),
  nginx_status_port: port().default(8080).describe("Nginx's stub_status, on 127.0.0.1 only, read by the Nginx exporter."),
  mysql_bind_address: doc(z.string({ error: 'a string (empty = the private address)' }), { type: 'address or ""' })
    .default('')
    .describe('Address the database server listens on; `""`: its private address (a web server\'s database endpoint takes the loopback addresses at the same port).'),
  db_health_port: port()
    .default(9200)
    .describe("The database hosts' health agent (db_health role), on their private address: the web servers' database endpoint checks it."),
  db_endpoint: bool()
    .default(true)
    .describe(
      'The web servers reach the databases through their local endpoint (db_endpoint role: writes on 127.0.0.2, reads on 127.0.0.3, at `mysql_port`), ' +
        'which follows the writable server by health checks: a switchover needs no change to the app. `false`: the app connects to the servers themselves (`app_db_write_host`, `app_db_read_host`).',
    ),
  mysql_exporter_user: mysqlName().default('exporter').describe('The MySQL account the mysqld exporter uses (created by the mysql role on the primary, replicated).'),
  mysql_exporter_password: secret('mysql_exporter_password').optional().describe("The exporter account's password; required on database hosts."),
  private_address: doc(text(isAddress, 'must be an IP address', 'IP address').optional(), { defaultText: "the host's inventory address" }).describe(
    'The address services bind to and peers use.',
  ),
  app_db_name: mysqlName().default('app').describe("The application's database."),
  mysql_app_user: mysqlName().default('app').describe("The application's MySQL user."),
  mysql_app_password: secret('mysql_app_password').describe("The application's MySQL password."),
  lb_virtual_ip: text(
    (s) => s === '' || (/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(s) && isAddress(s) && Number(s.split('/')[1]) >= 8 && Number(s.split('/')[1]) <= 32),
    (v) => `an IPv4 address with its prefix length like 203.0.113.100/24, or "" for none, got ${shown(v)}`,
    'address/prefix',
  )
    .default('')
    .describe(
      'The floating address of the load-balancer pair (DNS points at it), with its prefix length: keepalived holds it on one load balancer at a time, ' +
        'and the firewalls let VRRP pass between the pair only. `""`: no floating address (one load balancer, DNS points at it).',
    ),
  backend_tls: bool()
    .default(true)
    .describe(
      'Re-encrypt from the load balancers to the web servers (the default): Nginx serves only TLS on `http_port`, HAProxy verifies it against ' +
        "the inventory's internal CA (`<inventory>.pki/` on the control machine), or against `backend_tls_ca` with your own files. `false`: plain HTTP between them.",
    ),
};

export type SharedVar = keyof typeof SHARED;

/** Shared vars for a role's schema, as they are. */
export function pick<K extends SharedVar>(...names: K[]): Pick<typeof SHARED, K> {
  return Object.fromEntries(names.map((n) => [n, SHARED[n]])) as Pick<typeof SHARED, K>;
}

/** A shared var described in the role's own words (same type, default and checks). */
export function shared<K extends SharedVar>(name: K, description: string): (typeof SHARED)[K] {
  return SHARED[name].describe(description) as (typeof SHARED)[K];
}
