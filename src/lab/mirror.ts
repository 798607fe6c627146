import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { LabError } from './errors.ts';

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
}

export interface Mirrors {
  /** Serves bookworm and bookworm-updates. */
  debian: string;
  /**
   * Serves bookworm-security: the machine's own security source, else one derived from the Debian
   * mirror (see securityFromDebian); undefined only when neither exists.
   */
  security?: string;
}

/** Parses deb822 `.sources` text (stanzas separated by blank lines; `#` comments). */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let current: string | undefined;
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && current) {
        fields.set(current, `${fields.get(current)} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (!m) continue;
      current = m[1]!.toLowerCase();
      fields.set(current, m[2]!.trim());
    }
    if (/^(no|false)$/i.test(fields.get('enabled') ?? 'yes')) continue;
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    const src = { types: words('types'), uris: words('uris'), suites: words('suites'), components: words('components') };
    if (src.uris.length && src.suites.length) out.push(src);
  }
  return out;
}

/** Parses one-line `sources.list` text (`deb [opts] URI SUITE COMPONENT...`). */
export function parseOneLineSources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ types: [m[1]!], uris: [m[2]!], suites: [m[3]!], components: m[4]!.split(/\s+/).filter(Boolean) });
  }
  return out;
}

/**
 * The security archive next to a Debian mirror, for a machine whose sources list none (a real
 * Debian host always has one; without it the lab's hosts would never see a security update, and a
 * hardening audit of them would judge an image no real host runs). Debian publishes the security
 * archive as the `debian-security` tree beside `debian` (deb.debian.org/debian-security,
 * snapshot.debian.org/archive/debian-security/<date>, and the mirrors that carry it), so the last
 * path segment named `debian` becomes `debian-security`. A mirror whose path has no such segment
 * gives none: the lab then runs without a security suite, as before.
 */
export function securityFromDebian(debian: string): string | undefined {
  let url: URL;
  try {
    url = new URL(debian);
  } catch {
    return undefined;
  }
  const segments = url.pathname.split('/');
  const at = segments.lastIndexOf('debian');
  if (at < 0) return undefined;
  segments[at] = 'debian-security';
  url.pathname = segments.join('/');
  return url.toString().replace(/\/+$/, '');
}

/**
 * Picks the machine's Debian and Debian security mirrors from its sources (binary
 * `deb` entries only). Entries for the image's suite win, so a third-party
 * repository listed first is not mistaken for the Debian mirror. Without a security
 * source on the machine, the security archive beside the Debian mirror is used.
 */
export function pickMirrors(sources: AptSource[], suite = 'bookworm'): Mirrors {
  const deb = sources.filter((s) => s.types.includes('deb'));
  const isSecurity = (x: string) => /-security$|\/updates$/.test(x);
  const main = deb.find((s) => s.suites.includes(suite)) ?? deb.find((s) => s.suites.some((x) => !isSecurity(x)));
  const security = deb.find((s) => s.suites.includes(`${suite}-security`)) ?? deb.find((s) => s.suites.some(isSecurity));
  if (!main) {
    throw new LabError("no Debian mirror found in the machine's apt sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list)");
  }
  const clean = (u: string) => u.replace(/\/+$/, '');
  const debian = clean(main.uris[0]!);
  return { debian, security: security ? clean(security.uris[0]!) : securityFromDebian(debian) };
}

/** Reads the machine's own apt sources so no mirror host is ever hard-coded. */
export function machineMirrors(etcApt = '/etc/apt'): Mirrors {
  const sources: AptSource[] = [];
  const dir = join(etcApt, 'sources.list.d');
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) {
      const text = readFileSync(join(dir, f), 'utf8');
      if (f.endsWith('.sources')) sources.push(...parseDeb822Sources(text));
      else if (f.endsWith('.list')) sources.push(...parseOneLineSources(text));
    }
  }
  const list = join(etcApt, 'sources.list');
  if (existsSync(list)) sources.push(...parseOneLineSources(readFileSync(list, 'utf8')));
  return pickMirrors(sources);
}

/** The image's own apt sources: the same mirrors as the machine, for bookworm. */
export function imageSources(m: Mirrors): string {
  const stanzas = [
    `Types: deb\nURIs: ${m.debian}\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`,
  ];
  if (m.security) {
    stanzas.push(`Types: deb\nURIs: ${m.security}\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n`);
  }
  return stanzas.join('\n');
}

/** Host names the apt proxy may reach (the mirrors and nothing else). */
export function mirrorHosts(m: Mirrors): string[] {
  const hosts = [m.debian, m.security].filter((u): u is string => !!u).map((u) => new URL(u).hostname);
  return [...new Set(hosts)];
}
