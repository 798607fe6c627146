/*
 * `provision pki status | rotate start|promote|finish|abort`: the inventory's internal CA (src/pki,
 * docs/pki.md) and its rotation, one step per command, a converge of every host between steps.
 * Each step that depends on the hosts reads them first and refuses when they are not ready:
 *   promote: every CA bundle a peer verifies with must already trust the new CA, or a certificate
 *            re-issued by it would be refused: the load balancers' (web servers verified), the
 *            database hosts' (replication) and the web servers' database bundle (the app);
 *   finish:  no host may still hold a certificate of the old CA (it would be cut off): the web
 *            servers' backend certificates and the database servers'.
 * A host that cannot be read makes the step refuse (exit 3) unless --force. `pki status --hosts`
 * reads the same files and says which CA signed each certificate and which CAs each bundle trusts.
 */
import { X509Certificate } from 'node:crypto';
import { connectHosts, NO_EVENTS, SshConnector } from '../executor/index.js';
import { prepareHosts, type Host, type Inventory } from '../inventory/index.js';
import { probe, type Probe } from '../modules/contract.js';
import { leafFileState } from '../modules/internal-tls.js';
import { DB_CA_FILE, DB_CERT_FILE } from '../modules/mysql/tls.js';
import { abortRotation, finishRotation, loadCa, pkiDirFor, PkiError, promoteRotation, startRotation, type Ca, type CaCert, type RotationResult } from '../pki/index.js';
import { certificateExpiry } from '../pki/expiry.js';
import { roleVars } from '../roles/index.js';
import { BACKEND_CA_PATH } from '../roles/haproxy/index.js';
import { INTERNAL_CERT_FILE } from '../roles/nginx/index.js';
import { GROUPS } from '../roles/shared.js';
import { InputError } from '../util/errors.js';
import { sh } from '../util/quote.js';
import { ROTATION_STEPS } from './commands.js';
import { EXIT } from './exit-codes.js';
import { loadInventory } from './load.js';
import { requireInventory, type CommonOptions } from './options.js';
import { printErr, printOut } from './output.js';
import '../roles/builtin.js';

type Step = (typeof ROTATION_STEPS)[number];

interface PkiOptions extends CommonOptions {
  force?: boolean;
}

/** Hosts whose web-server certificate comes from the internal CA (backend_tls on, no certificate of your own). */
function internalLeafHosts(inv: Inventory): Host[] {
  return hostsIn(inv, GROUPS.webservers).filter((h) => {
    const v = roleVars('nginx', h, { vars: {} });
    return v.backend_tls === true && !v.backend_tls_cert;
  });
}

/** Load balancers that verify the web servers against the internal CA's bundle. */
function bundleHosts(inv: Inventory): Host[] {
  return hostsIn(inv, GROUPS.loadbalancers).filter((h) => {
    const v = roleVars('haproxy', h, { vars: {} });
    return v.backend_tls === true && !v.backend_tls_ca;
  });
}

function hostsIn(inv: Inventory, group: string): Host[] {
  const names = new Set(inv.groups.get(group) ?? []);
  return [...inv.hosts.values()].filter((h) => names.has(h.name));
}

/** The database hosts: the mysql role gives each a certificate of the internal CA and the CA bundle. */
function databaseHosts(inv: Inventory): Host[] {
  const names = new Set([...(inv.groups.get(GROUPS.dbPrimary) ?? []), ...(inv.groups.get(GROUPS.dbReplica) ?? [])]);
  return [...inv.hosts.values()].filter((h) => names.has(h.name));
}

/** A file on a host that a rotation step depends on. */
export interface HostFile {
  host: Host;
  path: string;
}

/** Every certificate the internal CA issued, where it is: the web servers' backend certificates, the database servers'. */
export function leafFiles(inv: Inventory): HostFile[] {
  return [...internalLeafHosts(inv).map((host) => ({ host, path: INTERNAL_CERT_FILE })), ...databaseHosts(inv).map((host) => ({ host, path: DB_CERT_FILE }))];
}

/**
 * Every CA bundle a peer verifies a certificate of the internal CA with: the load balancers' (the web
 * servers), the database hosts' (replication), and the web servers' database bundle (the app role
 * installs it for DB_SSL_CA wherever the inventory has a primary).
 */
export function bundleFiles(inv: Inventory): HostFile[] {
  const db = databaseHosts(inv);
  const apps = hostsIn(inv, GROUPS.dbPrimary).length > 0 ? hostsIn(inv, GROUPS.webservers).filter((h) => !db.includes(h)) : [];
  return [
    ...bundleHosts(inv).map((host) => ({ host, path: BACKEND_CA_PATH })),
    ...[...db, ...apps].map((host) => ({ host, path: DB_CA_FILE })),
  ];
}

const bundleProbe = (path: string) => probe(`pki:bundle:${path}`, sh`cat -- ${path} 2>/dev/null || true`, (r) => r?.stdout ?? '');

/** What a file held, by host and path. */
export interface FileRead<T> {
  host: string;
  path: string;
  value: T;
}

/** The files' probes, each host's in one read as root (one connection per host); a host that could not be read is in `down`. */
async function readFiles<T>(inv: Inventory, files: HostFile[], probeOf: (path: string) => Probe<T>): Promise<{ got: Array<FileRead<T>>; down: Map<string, string> }> {
  const got: Array<FileRead<T>> = [];
  const byHost = new Map<string, HostFile[]>();
  for (const f of files) byHost.set(f.host.name, [...(byHost.get(f.host.name) ?? []), f]);
  if (byHost.size === 0) return { got, down: new Map() };
  const hosts = [...byHost.keys()].map((n) => inv.hosts.get(n)!);
  prepareHosts(inv, [...byHost.keys()]);
  const connector = new SshConnector(inv);
  try {
    const { up, down } = await connectHosts(connector, hosts, hosts.length, NO_EVENTS);
    for (const [name, c] of up) {
      const probes = byHost.get(name)!.map((f) => ({ path: f.path, p: probeOf(f.path) }));
      try {
        const results = await c.session.read(probes.map((x) => x.p));
        for (const { path, p } of probes) got.push({ host: name, path, value: p.parse(results.get(p.key)) });
      } catch (err) {
        down.set(name, err instanceof Error ? err.message : String(err));
      }
    }
    return { got, down };
  } finally {
    await connector.close();
  }
}

const pemBody = (pem: string) => pem.replace(/-----[A-Z ]+-----|\s/g, '');
const where = (f: { host: string; path: string }) => `${f.host} (${f.path})`;

/** The bundles among `bundles` that do not hold `ca`: promoting it would have their host refuse a certificate it signed. */
export function bundlesWithout(ca: Pick<CaCert, 'certPem'>, bundles: Array<FileRead<string>>): string[] {
  return bundles.filter((b) => !pemBody(b.value).includes(pemBody(ca.certPem))).map(where);
}

/** Refusal with the hosts that could not be read, unless --force. */
function unreachableRefusal(step: Step, down: Map<string, string>, force: boolean | undefined): number | undefined {
  if (down.size === 0 || force) return undefined;
  printErr(`provision: pki rotate ${step} refused, nothing changed: ${[...down].map(([h, why]) => `${h} could not be read (${why})`).join('; ')} (--force to go on without them)`);
  return EXIT.UNREACHABLE;
}

async function promoteWhenTrusted(inv: Inventory, dir: string, o: PkiOptions): Promise<RotationResult | number> {
  const ca = loadCa(dir);
  const next = ca?.trusted.find((c) => c.role === 'next');
  if (ca && next) {
    const { got, down } = await readFiles(inv, bundleFiles(inv), bundleProbe);
    const refused = unreachableRefusal('promote', down, o.force);
    if (refused !== undefined) return refused;
    const missing = bundlesWithout(next, got);
    if (missing.length) throw new PkiError(`cannot promote the new CA ${next.id}: ${missing.join(', ')} do not trust it yet`, 'converge every host first');
  }
  return promoteRotation(dir);
}

async function finishWhenReissued(inv: Inventory, dir: string, o: PkiOptions): Promise<RotationResult | number> {
  const { got, down } = await readFiles(inv, leafFiles(inv), leafFileState);
  const refused = unreachableRefusal('finish', down, o.force);
  if (refused !== undefined) return refused;
  const leaves = got.flatMap((f) => (f.value.certPem ? [{ host: where(f), certPem: f.value.certPem }] : []));
  return finishRotation(dir, { leaves });
}

/** Which of the trusted CAs signed a certificate (its id), or null: none of them (another CA, or not a certificate). */
function signerOf(certPem: string, ca: Ca): string | null {
  try {
    const cert = new X509Certificate(certPem);
    return ca.trusted.find((c) => cert.checkIssued(c.cert) && cert.verify(c.cert.publicKey))?.id ?? null;
  } catch {
    return null;
  }
}

/** One file of `pki status --hosts`. */
export type HostFileStatus =
  | { host: string; path: string; kind: 'certificate'; present: boolean; signedBy: string | null; notAfter?: string; daysLeft?: number }
  | { host: string; path: string; kind: 'bundle'; present: boolean; trusts: string[]; missing: string[] };

/** What each host holds, against the CA folder: which trusted CA signed each certificate, which trusted CAs each bundle lacks. */
export function describeHostFiles(ca: Ca, leaves: Array<FileRead<{ certPem?: string; exists: boolean }>>, bundles: Array<FileRead<string>>, now: Date): HostFileStatus[] {
  return [
    ...leaves.map((f): HostFileStatus => {
      if (!f.value.certPem) return { host: f.host, path: f.path, kind: 'certificate', present: false, signedBy: null };
      const e = certificateExpiry(f.value.certPem, now);
      return { host: f.host, path: f.path, kind: 'certificate', present: true, signedBy: signerOf(f.value.certPem, ca), notAfter: e.notAfter.toISOString(), daysLeft: e.daysLeft };
    }),
    ...bundles.map((f): HostFileStatus => {
      const trusts = ca.trusted.filter((c) => pemBody(f.value).includes(pemBody(c.certPem))).map((c) => c.id);
      return { host: f.host, path: f.path, kind: 'bundle', present: f.value.trim() !== '', trusts, missing: ca.trusted.map((c) => c.id).filter((id) => !trusts.includes(id)) };
    }),
  ];
}

function renderHostFile(f: HostFileStatus): string {
  if (f.kind === 'certificate') {
    if (!f.present) return `  ${where(f)}: no certificate`;
    return `  ${where(f)}: certificate signed by ${f.signedBy ?? 'a CA this folder does not trust'}, ends ${f.notAfter} (${f.daysLeft} days)`;
  }
  if (!f.present) return `  ${where(f)}: no CA bundle`;
  return `  ${where(f)}: bundle trusts ${f.trusts.join(', ') || 'none of this folder\'s CAs'}${f.missing.length ? `; NOT ${f.missing.join(', ')}` : ''}`;
}

function describeCa(ca: Ca, now: Date) {
  return {
    dir: ca.dir,
    phase: ca.phase,
    cas: ca.trusted.map((c) => {
      const e = certificateExpiry(c.cert, now);
      return { id: c.id, role: c.role, subject: e.subject, notAfter: e.notAfter.toISOString(), daysLeft: e.daysLeft };
    }),
  };
}

/**
 * `provision pki status [--hosts]`: the CA folder, its phase and every trusted CA (0; 1 when there is no
 * CA yet). --hosts also reads every certificate and CA bundle of the rotation on the hosts (3 when a
 * host could not be read; what was read is shown).
 */
export async function pkiStatusCommand(o: PkiOptions & { hosts?: boolean }): Promise<number> {
  const inv = loadInventory(requireInventory(o));
  const dir = pkiDirFor(inv);
  const ca = loadCa(dir);
  if (!ca) {
    if (o.json) printOut(JSON.stringify({ dir, phase: 'none', cas: [] }));
    else printOut(`${dir}: no CA yet (the first real run with backend_tls makes it)`);
    return EXIT.FAILED;
  }
  const now = new Date();
  const d = describeCa(ca, now);
  let files: HostFileStatus[] | undefined;
  let down = new Map<string, string>();
  if (o.hosts) {
    const leaves = await readFiles(inv, leafFiles(inv), leafFileState);
    const bundles = await readFiles(inv, bundleFiles(inv), bundleProbe);
    down = new Map([...leaves.down, ...bundles.down]);
    files = describeHostFiles(ca, leaves.got, bundles.got, now);
  }
  if (o.json) printOut(JSON.stringify({ ...d, ...(files ? { hosts: files, unreadable: Object.fromEntries(down) } : {}) }));
  else {
    printOut(`${d.dir}: ${d.phase}${d.phase === 'stable' ? '' : ' (a rotation is under way)'}`);
    for (const c of d.cas) printOut(`  ${c.role.padEnd(8)} ${c.id}  ${c.subject}  ends ${c.notAfter} (${c.daysLeft} days)`);
    if (files) {
      printOut('hosts:');
      for (const f of files) printOut(renderHostFile(f));
      for (const [h, why] of down) printOut(`  ${h}: could not be read (${why})`);
    }
  }
  return down.size > 0 ? EXIT.UNREACHABLE : EXIT.OK;
}

/** `provision pki rotate STEP`: 2 the step was made, 1 refused (the CA folder unchanged), 3 a host could not be read, 4 bad input. */
export async function pkiRotateCommand(step: string, o: PkiOptions): Promise<number> {
  if (!(ROTATION_STEPS as readonly string[]).includes(step)) throw new InputError(`pki rotate: unknown step "${step}"`, `one of ${ROTATION_STEPS.join(', ')} (docs/pki.md)`);
  const inv = loadInventory(requireInventory(o));
  const dir = pkiDirFor(inv);
  try {
    const r =
      step === 'start'
        ? await startRotation(dir, { label: inv.name })
        : step === 'promote'
          ? await promoteWhenTrusted(inv, dir, o)
          : step === 'finish'
            ? await finishWhenReissued(inv, dir, o)
            : await abortRotation(dir);
    if (typeof r === 'number') return r;
    if (o.json) printOut(JSON.stringify({ step: r.step, from: r.from, to: r.to, next: r.next, ...describeCa(r.ca, new Date()) }));
    else printOut(`pki rotate ${r.step}: ${r.from} → ${r.to}. Next: ${r.next}.`);
    return EXIT.CHANGED;
  } catch (err) {
    if (err instanceof PkiError) {
      printErr(`provision: pki rotate ${step} refused: ${err.message}`);
      return EXIT.FAILED;
    }
    throw err;
  }
}
