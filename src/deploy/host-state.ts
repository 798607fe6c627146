import { quote } from '../util/quote.js';
import { compareText } from '../util/compare-text.js';

/**
 * Where a release lives on a web host, and what the host records about its releases. Every path is
 * derived from `app_dir` here and nowhere else.
 */
export interface AppLayout {
  dir: string;
  releases: string;
  current: string;
  shared: string;
  /** The app's environment (systemd EnvironmentFile syntax), 0640 root:app. */
  envFile: string;
  /** Written by the app, kept across releases (the only place the unit may write). */
  data: string;
  /** One line per switch of `current`: "EPOCH ID". */
  log: string;
}

export function appLayout(dir: string): AppLayout {
  return {
    dir,
    releases: `${dir}/releases`,
    current: `${dir}/current`,
    shared: `${dir}/shared`,
    envFile: `${dir}/shared/env`,
    data: `${dir}/shared/data`,
    log: `${dir}/releases.log`,
  };
}

/** The marker a release directory gets last, once complete: "ID EPOCH". A directory without it is not a release. */
export const RELEASE_MARKER = '.provision-release';

export interface InstalledRelease {
  id: string;
  installedAt: number;
}

/** What one web host runs and keeps. */
export interface HostReleases {
  /** The release `current` points to; undefined before the first one. */
  current?: string;
  /** Complete releases on the host, oldest first. */
  installed: InstalledRelease[];
  /** Ids in the order `current` was switched to them. */
  history: string[];
  /** The app's unit is installed (the app role ran on the host). */
  unit: boolean;
}

/** One round trip: current, the complete releases, the switch history, the unit. */
export function readStateScript(l: AppLayout, unitPath: string): string {
  return [
    `d=${quote(l.dir)}`,
    `c=$(readlink ${quote(l.current)} 2>/dev/null || true)`,
    `printf 'current %s\\n' "\${c##*/}"`,
    `for m in ${quote(l.releases)}/*/${RELEASE_MARKER}; do [ -f "$m" ] && printf 'release %s\\n' "$(head -n 1 "$m")"; done`,
    `[ -f ${quote(l.log)} ] && sed 's/^/switched /' ${quote(l.log)}`,
    `[ -f ${quote(unitPath)} ] && echo unit`,
    'exit 0',
  ].join('\n');
}

export function parseState(out: string): HostReleases {
  const s: HostReleases = { installed: [], history: [], unit: false };
  for (const line of out.split('\n')) {
    const [kind, a = '', b = ''] = line.trim().split(/\s+/);
    if (kind === 'current' && a) s.current = a;
    else if (kind === 'release' && a) s.installed.push({ id: a, installedAt: Number(b) || 0 });
    else if (kind === 'switched' && b) s.history.push(b);
    else if (kind === 'unit') s.unit = true;
  }
  s.installed.sort((x, y) => x.installedAt - y.installedAt || compareText(x.id, y.id));
  return s;
}

/**
 * The release that ran before the current one and is still installed: the switch history walked
 * back (a rollback of a rollback is an undo); without history, the newest release installed before it.
 */
export function previousRelease(s: HostReleases): string | undefined {
  const present = new Set(s.installed.map((r) => r.id));
  for (let i = s.history.length - 1; i >= 0; i--) {
    const id = s.history[i]!;
    if (id !== s.current && present.has(id)) return id;
  }
  const at = s.installed.findIndex((r) => r.id === s.current);
  return at > 0 ? s.installed[at - 1]!.id : undefined;
}

/**
 * Releases to remove so that `keep` remain: the most recently switched to (then the most recently
 * installed) stay; the current one and the one a rollback would go to are never removed.
 */
export function releasesToPrune(s: HostReleases, keep: number): string[] {
  const ranked: string[] = [];
  const add = (id: string | undefined) => {
    if (id && !ranked.includes(id) && s.installed.some((r) => r.id === id)) ranked.push(id);
  };
  add(s.current);
  add(previousRelease(s));
  for (let i = s.history.length - 1; i >= 0; i--) add(s.history[i]);
  for (let i = s.installed.length - 1; i >= 0; i--) add(s.installed[i]!.id);
  const kept = new Set(ranked.slice(0, Math.max(keep, s.current ? 2 : 1)));
  return s.installed.map((r) => r.id).filter((id) => !kept.has(id));
}
