/**
 * The host-key decision for one connection, OpenSSH's rules (sshconnect.c check_host_key) with
 * provision's policy on top:
 * - the host is looked up by OpenSSH's name for it: "address" on port 22, "[address]:port" otherwise;
 * - the offered key must equal one of the host's plain entries (any of them, any type); a key that
 *   is @revoked is refused even if it is also listed as good; plain entries that all differ are a
 *   changed key, always refused;
 * - on a port other than 22, a key that equals an entry of the bare address is accepted too (what
 *   ssh does: "found matching key w/out port"), but such an entry never makes a key "changed";
 * - a host with no plain entry and a matching @cert-authority entry must present a host certificate
 *   from that CA (fetched beforehand by cert-probe.ts, checked by certificate.ts), and ssh2 is made to
 *   negotiate the certified key, which must be exactly the key of the certificate;
 * - accept_new_host_keys records a key only for a host with no entry at all, in the "[address]:port"
 *   form, so the next run matches it and records nothing.
 * - a line that cannot be read and names this host refuses this host (its key could not be checked,
 *   it could even have been a @revoked line), naming file:line; it concerns no other host.
 */
import type { Duplex } from 'node:stream';
import { ConnectionError } from '../../util/errors.js';
import { checkHostCertificate, parseCertificate, type Certificate } from './certificate.js';
import { CertificateProbeError, fetchHostCertificate } from './cert-probe.js';
import { HOST_KEY_ALGORITHMS, fingerprint, hostKeyAlgorithmsFor, parsePublicKey, type PublicKey } from './keys.js';
import {
  KnownHostsReadError,
  appendKnownHost,
  entriesFor,
  hostPattern,
  readKnownHosts,
  where,
  type HostEntries,
  type KnownHostsEntry,
  type KnownHostsFile,
  type UnreadableLine,
} from './known-hosts-file.js';

export interface HostKeyTarget {
  /** The inventory name, for messages. */
  label: string;
  address: string;
  port: number;
  knownHosts: string;
  acceptNew: boolean;
  timeoutMs: number;
}

/** What a plain key offered by the server is, judged against known_hosts entries (no side effects). */
export type PlainVerdict =
  | { kind: 'known'; entry: KnownHostsEntry }
  | { kind: 'revoked'; entry: KnownHostsEntry }
  | { kind: 'changed'; entries: KnownHostsEntry[] }
  | { kind: 'unknown' };

/**
 * OpenSSH's check_hostkeys_by_key_or_type for a plain key, plus its port-less retry: `bare` are the
 * entries of the bare address when the port is not 22.
 */
export function judgePlainKey(key: Buffer, entries: HostEntries, bare?: HostEntries): PlainVerdict {
  const revoked = [...entries.revoked, ...(bare?.revoked ?? [])].find((e) => e.key.blob.equals(key));
  if (revoked) return { kind: 'revoked', entry: revoked };
  const known = entries.plain.find((e) => e.key.blob.equals(key));
  if (known) return { kind: 'known', entry: known };
  if (entries.plain.length) return { kind: 'changed', entries: entries.plain };
  const viaBare = bare?.plain.find((e) => e.key.blob.equals(key));
  if (viaBare) return { kind: 'known', entry: viaBare };
  return { kind: 'unknown' };
}

export interface HostLookup {
  /** OpenSSH's name for the host: "address" on port 22, "[address]:port" otherwise. */
  name: string;
  entries: HostEntries;
  /** On a port other than 22: the entries of the bare address (ssh's port-less retry). */
  bare?: HostEntries;
  /** Lines that cannot be read and name the host (under either name): the host is refused. */
  unreadable: UnreadableLine[];
  /** 'certificate' when only a @cert-authority entry speaks for the host: it must show a certificate. */
  route: 'plain' | 'certificate';
}

/** Everything known_hosts says about address:port, and how its key will be checked. */
export function lookupHost(known: KnownHostsFile, address: string, port: number): HostLookup {
  const name = hostPattern(address, port);
  const entries = entriesFor(known, name);
  const bare = port === 22 ? undefined : entriesFor(known, hostPattern(address, 22));
  const unreadable = [...entries.unreadableForHost, ...(bare?.unreadableForHost ?? [])];
  const route = entries.plain.length || bare?.plain.length || !entries.authorities.length ? 'plain' : 'certificate';
  return { name, entries, bare, unreadable, route };
}

function lines(xs: Array<{ file: string; line: number }>): string {
  return xs.map(where).join(', ');
}

function unreadableNote(xs: UnreadableLine[]): string {
  return xs.map((u) => `${where(u)}: ${u.reason}`).join('; ');
}

export class HostKeyCheck {
  /** Why the last offered key was refused (ssh2 only says "Host denied"). */
  problem: string | undefined;

  private constructor(
    private readonly t: HostKeyTarget,
    private readonly name: string,
    private readonly entries: HostEntries,
    private readonly bare: HostEntries | undefined,
    private readonly certificate: Certificate | undefined,
    /** Host-key algorithms for ssh2, in order of preference. */
    readonly algorithms: string[],
  ) {}

  /**
   * Reads known_hosts for the target and, when the host is vouched for by a CA only, fetches and
   * checks its certificate over `openStream()`. Throws ConnectionError (level 'hostkey') when the
   * host cannot be verified whatever key it shows.
   */
  static async prepare(t: HostKeyTarget, openStream: () => Promise<Duplex>): Promise<HostKeyCheck> {
    const refuse = (msg: string) => new ConnectionError(`${t.label}: ${msg}`, 'hostkey', `check the host, then fix ${t.knownHosts}`);
    let known;
    try {
      known = readKnownHosts(t.knownHosts);
    } catch (err) {
      if (err instanceof KnownHostsReadError) throw refuse(err.message);
      throw err;
    }
    const { name, entries, bare, unreadable, route } = lookupHost(known, t.address, t.port);
    if (unreadable.length) {
      throw refuse(`known_hosts has a line for ${name} that cannot be read, so its key cannot be checked: ${unreadableNote(unreadable)}`);
    }
    if (route === 'plain') {
      const types = [...entries.plain, ...(bare?.plain ?? [])].flatMap((e) => hostKeyAlgorithmsFor(e.key.type));
      return new HostKeyCheck(t, name, entries, bare, undefined, [...new Set([...types, ...HOST_KEY_ALGORITHMS])]);
    }

    // Only a CA vouches for this host: it must show a certificate from that CA.
    const cas = `the @cert-authority entries for ${name} (${lines(entries.authorities)})`;
    let probe;
    try {
      probe = await fetchHostCertificate(await openStream(), t.timeoutMs);
    } catch (err) {
      if (err instanceof CertificateProbeError) throw refuse(`fetching its host certificate for ${cas}: ${err.message}`);
      throw err;
    }
    if ('none' in probe) throw refuse(`${name} has no plain key in ${t.knownHosts}, only ${cas}, and the host shows no certificate: ${probe.none}`);
    let cert: Certificate;
    try {
      cert = parseCertificate(probe.certificate);
    } catch (err) {
      throw refuse(`its host certificate cannot be read: ${(err as Error).message}`);
    }
    const verdict = checkHostCertificate(cert, { principal: hostPattern(t.address, 22), authorities: entries.authorities, revoked: [...entries.revoked, ...(bare?.revoked ?? [])], now: new Date() });
    if (!verdict.ok) throw refuse(`host certificate refused: ${verdict.reason}`);
    return new HostKeyCheck(t, name, entries, bare, cert, hostKeyAlgorithmsFor(cert.key.type));
  }

  /** ssh2's hostVerifier: the raw key blob the server proved (or will prove) it holds. */
  verify(blob: Buffer): boolean {
    this.problem = undefined;
    let key: PublicKey;
    try {
      key = parsePublicKey(blob);
    } catch (err) {
      this.problem = `${this.t.label}: the host's key cannot be read: ${(err as Error).message}`;
      return false;
    }
    const shown = `${key.type} ${fingerprint(key.blob)}`;
    if (this.certificate) {
      if (key.blob.equals(this.certificate.key.blob)) return true;
      this.problem =
        `${this.t.label}: the host's key ${shown} is not the key of its certificate ` +
        `(${this.certificate.key.type} ${fingerprint(this.certificate.key.blob)}); refusing to connect`;
      return false;
    }
    const v = judgePlainKey(blob, this.entries, this.bare);
    switch (v.kind) {
      case 'known':
        return true;
      case 'revoked':
        this.problem = `${this.t.label}: host key ${shown} for ${this.name} is marked @revoked at ${where(v.entry)}; refusing to connect`;
        return false;
      case 'changed':
        this.problem =
          `${this.t.label}: HOST KEY CHANGED for ${this.name}: it now offers ${shown}, ` +
          `which is not the key recorded in ${this.t.knownHosts} (${lines(v.entries)}); refusing to connect`;
        return false;
      case 'unknown':
        return this.#unknown(key, shown);
    }
  }

  #unknown(key: PublicKey, shown: string): boolean {
    const unknown = `unknown host key for ${this.name} (${shown}); it is not in ${this.t.knownHosts}`;
    const otherPort = this.bare?.plain.length
      ? `${hostPattern(this.t.address, 22)} is known on port 22 with other keys (${lines(this.bare.plain)}); add the key for ${this.name} explicitly`
      : undefined;
    const anyHost = this.entries.unreadableAnyHost;
    const unreadable = anyHost.length ? `lines that cannot be read may name it: ${unreadableNote(anyHost)}` : undefined;
    if (!this.t.acceptNew || otherPort || unreadable) {
      const why = [otherPort, unreadable].filter(Boolean).join('; ');
      this.problem = `${this.t.label}: ${unknown}${why ? `; ${this.t.acceptNew ? 'not recorded: ' : ''}${why}` : ''}`;
      return false;
    }
    appendKnownHost(this.t.knownHosts, this.name, key);
    return true;
  }
}
