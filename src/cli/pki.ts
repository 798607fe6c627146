/*
 * `provision pki status | rotate start|promote|finish|abort`: the inventory's internal CA (src/pki,
 * docs/pki.md) and its rotation, one step per command, a converge of every host between steps.
 * Each step that depends on the hosts reads them first and refuses when they are not ready:
 *   promote: every load balancer that verifies the web servers with the internal CA must already
 *            trust the new CA (its ca-file holds it), or a re-issued web server would be refused;
 *   finish:  no web server may still hold a certificate of the old CA (it would be cut off).
 * A host that cannot be read makes the step refuse (exit 3) unless --force.
 */
import { connectHosts, NO_EVENTS, SshConnector } from '../executor/index.js';
import { prepareHosts, type Host, type Inventory } from '../inventory/index.js';
import { probe } from '../modules/contract.js';
import { leafFileState } from '../modules/internal-tls.js';
import { abortRotation, finishRotation, loadCa, pkiDirFor, PkiError, promoteRotation, startRotation, type Ca, type RotationResult } from '../pki/index.js';
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

/** One probe on each host, as root; what could not be read is in `down`. */
async function readHosts<T>(inv: Inventory, hosts: Host[], read: (h: Host) => ReturnType<typeof probe<T>>): Promise<{ got: Map<string, T>; down: Map<string, string> }> {
  const got = new Map<string, T>();
  if (hosts.length === 0) return { got, down: new Map() };
  prepareHosts(inv, hosts.map((h) => h.name));
  const connector = new SshConnector(inv);
  try {
    const { up, down } = await connectHosts(connector, hosts, hosts.length, NO_EVENTS);
    for (const [name, c] of up) {
      const p = read(c.host);
      try {
        got.set(name, p.parse((await c.session.read([p])).get(p.key)));
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
const bundleProbe = probe('pki:bundle', sh`cat -- ${BACKEND_CA_PATH} 2>/dev/null || true`, (r) => r?.stdout ?? '');

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
    const { got, down } = await readHosts(inv, bundleHosts(inv), () => bundleProbe);
    const refused = unreachableRefusal('promote', down, o.force);
    if (refused !== undefined) return refused;
    const missing = [...got].filter(([, bundle]) => !pemBody(bundle).includes(pemBody(next.certPem))).map(([h]) => h);
    if (missing.length) throw new PkiError(`cannot promote the new CA ${next.id}: ${missing.join(', ')} do not trust it yet (${BACKEND_CA_PATH})`, 'converge every host first');
  }
  return promoteRotation(dir);
}

async function finishWhenReissued(inv: Inventory, dir: string, o: PkiOptions): Promise<RotationResult | number> {
  const { got, down } = await readHosts(inv, internalLeafHosts(inv), () => leafFileState(INTERNAL_CERT_FILE));
  const refused = unreachableRefusal('finish', down, o.force);
  if (refused !== undefined) return refused;
  const leaves = [...got].flatMap(([host, s]) => (s.certPem ? [{ host, certPem: s.certPem }] : []));
  return finishRotation(dir, { leaves });
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

/** `provision pki status`: the CA folder, its phase and every trusted CA (0; 1 when there is no CA yet). */
export function pkiStatusCommand(o: PkiOptions): number {
  const inv = loadInventory(requireInventory(o));
  const dir = pkiDirFor(inv);
  const ca = loadCa(dir);
  if (!ca) {
    if (o.json) printOut(JSON.stringify({ dir, phase: 'none', cas: [] }));
    else printOut(`${dir}: no CA yet (the first real run with backend_tls makes it)`);
    return EXIT.FAILED;
  }
  const d = describeCa(ca, new Date());
  if (o.json) printOut(JSON.stringify(d));
  else {
    printOut(`${d.dir}: ${d.phase}${d.phase === 'stable' ? '' : ' (a rotation is under way)'}`);
    for (const c of d.cas) printOut(`  ${c.role.padEnd(8)} ${c.id}  ${c.subject}  ends ${c.notAfter} (${c.daysLeft} days)`);
  }
  return EXIT.OK;
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
