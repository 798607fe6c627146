import { quote, sh } from '../util/quote.js';
import { RELEASE_MARKER, type AppLayout } from './host-state.js';

/** The app's systemd unit (the app role writes it; a deploy restarts it). */
export const APP_UNIT = 'app.service';
export const APP_UNIT_PATH = `/etc/systemd/system/${APP_UNIT}`;

/**
 * A command run as the app user, never root, through systemd (the host's own way of starting a
 * process as another user with a clean environment), waiting for it and passing its output and exit
 * code on. With an env file, the app's environment as its unit gets it (systemd reads the file:
 * its quoting is systemd's, never a shell's). `args` are shell words the calling script expands
 * (e.g. "$t"), handed to the command as $1, $2, …
 */
export function asAppUser(o: { user: string; cwd: string; cmd: string; envFile?: string; setenv?: Record<string, string>; args?: string[] }): string {
  const props = [`--uid=${o.user}`, `--gid=${o.user}`, `--working-directory=${o.cwd}`];
  if (o.envFile) props.push(`--property=EnvironmentFile=${o.envFile}`);
  for (const [k, v] of Object.entries(o.setenv ?? {})) props.push(`--setenv=${k}=${v}`);
  const run = sh`systemd-run --quiet --wait --pipe --collect --service-type=exec ${props} /bin/sh -c ${o.cmd}`;
  return o.args?.length ? `${run} sh ${o.args.join(' ')}` : run;
}

/**
 * The lines that make `$d/$id` (d: the releases directory, id: the release, both set before) from
 * what `unpack` puts in "$t": unpacked into a temporary directory beside it, owned by root and not
 * writable by the app, built there as the app user when a build command is set, marked complete,
 * then renamed into place. An interrupted transfer or a failed build leaves no release behind. A
 * release already there is not replaced (its id is its content): "present" (stdin drained when
 * asked), else "installed". `cleanup`: more paths (shell words) the EXIT trap removes.
 */
export function installBody(o: { user: string; build?: string; unpack: string; drainStdin?: boolean; cleanup?: string }): string[] {
  const extra = o.cleanup ? ` ${o.cleanup}` : '';
  const lines = [
    't="$d/.incoming-$id"',
    'mkdir -p "$d"',
    `if [ -f "$d/$id/${RELEASE_MARKER}" ]; then ${o.drainStdin ? 'cat >/dev/null; ' : ''}echo present; else`,
    'rm -rf "$t"',
    'mkdir -m 0755 "$t"',
    `trap 'rm -rf "$t"${extra}' EXIT`,
    o.unpack,
  ];
  if (o.build) {
    lines.push(
      sh`chown -R ${`${o.user}:${o.user}`} "$t"`,
      // HOME inside the release while it builds: npm and friends keep their caches there, then it goes.
      asAppUser({ user: o.user, cwd: '/', cmd: 'cd "$1" && HOME="$1/.build-home" && export HOME && exec /bin/sh -c "$2"', args: ['"$t"', quote(o.build)] }),
      'rm -rf "$t/.build-home"',
      'chown -R root:root "$t"',
    );
  }
  // Readable by the app user whatever modes the source had (a 0700 directory would lock it out), writable by root only.
  lines.push(
    'chmod -R u+rwX,go+rX,go-w "$t"',
    `printf '%s %s\\n' "$id" "$(date +%s)" > "$t/${RELEASE_MARKER}"`,
    'mv -T "$t" "$d/$id"',
    o.cleanup ? `trap 'rm -rf${extra}' EXIT` : 'trap - EXIT',
    'echo installed',
    'fi',
  );
  return lines;
}

/** Receives a release as a gzip'd tar on stdin into `releases/<id>` (installBody). */
export function installScript(l: AppLayout, id: string, o: { user: string; build?: string }): string {
  return ['set -eu', 'umask 022', sh`d=${l.releases}; id=${id}`, ...installBody({ ...o, unpack: 'gzip -dc | tar -xf - -C "$t" --no-same-owner', drainStdin: true })].join('\n');
}

/**
 * Points `current` at a release by renaming a new symlink over it (a reader sees the old or the new
 * target, never none), and records the switch. The release must be complete on the host. Without
 * an id, the script's own $id.
 */
export function linkCurrentScript(l: AppLayout, id?: string): string {
  return [
    id === undefined ? sh`d=${l.dir}` : sh`d=${l.dir}; id=${id}`,
    `[ -f "$d/releases/$id/${RELEASE_MARKER}" ] || { echo "release $id is not on this host" >&2; exit 3; }`,
    'ln -sfn "releases/$id" "$d/.current.new"',
    'mv -T "$d/.current.new" "$d/current"',
    `printf '%s %s\\n' "$(date +%s)" "$id" >> "$d/releases.log"`,
  ].join(' && ');
}

/** Switch `current` and restart the app on it. */
export function switchScript(l: AppLayout, id: string): string {
  return `set -eu\n${linkCurrentScript(l, id)}\n${sh`systemctl restart ${APP_UNIT}`}`;
}

export function pruneScript(l: AppLayout, ids: string[]): string {
  return ids.map((id) => sh`rm -rf ${`${l.releases}/${id}`}`).join('\n') || 'true';
}

/**
 * Polls a URL on the web host itself (through Nginx, as the load balancers reach it) until it
 * answers 200 or the bound runs out; node is there, since the app runs on it. Prints the last answer.
 */
export function healthScript(o: { url: string; hostHeader: string; timeoutMs: number }): string {
  const js = `
const u = new URL(process.argv[1]);
const lib = require(u.protocol === 'https:' ? 'https' : 'http');
const end = Date.now() + Number(process.argv[3]);
let last = 'no answer';
function once() {
  const req = lib.get(u, { headers: { Host: process.argv[2] }, timeout: 3000, rejectUnauthorized: false, agent: false }, (res) => {
    res.resume();
    last = 'HTTP ' + res.statusCode;
    if (res.statusCode === 200) { console.log(last); process.exit(0); }
    again();
  });
  req.on('timeout', () => req.destroy(new Error('timed out')));
  req.on('error', (e) => { last = e.code || e.message; again(); });
}
function again() {
  if (Date.now() >= end) { console.log(last); process.exit(1); }
  setTimeout(once, 300);
}
once();`;
  return sh`node -e ${js} ${o.url} ${o.hostHeader} ${o.timeoutMs}`;
}

/** The health URL through Nginx on the host's private address (https when the load balancers re-encrypt). */
export function healthUrl(o: { address: string; port: number; path: string; tls: boolean }): string {
  const host = o.address.includes(':') ? `[${o.address}]` : o.address;
  return `${o.tls ? 'https' : 'http'}://${host}:${o.port}${o.path}`;
}

export { quote };
