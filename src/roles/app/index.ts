import path from 'node:path';
import { z } from 'zod';
import { appLayout } from '../../deploy/host-state.js';
import { buildLocal, localRelease, packedRelease } from '../../deploy/release.js';
import { nodejsRepositoryTasks, nodejsRepositoryUrl } from './nodejs.js';
import { APP_UNIT, APP_UNIT_PATH, installScript, linkCurrentScript } from '../../deploy/scripts.js';
import { PACKAGE_ROOT } from '../../util/paths.js';
import { sh } from '../../util/quote.js';
import { Secret } from '../../util/secrets.js';
import { defineRole, problemIf, withRules } from '../define.js';
import { checkRef, gitInstallScript, isKnownHostsLine, isRepositoryUrl, readDeployKey } from '../../deploy/git.js';
import { DB_ENDPOINT_READ_ADDRESS, DB_ENDPOINT_WRITE_ADDRESS } from '../db_endpoint/index.js';
import { GROUPS, inGroup, privateAddress } from '../shared.js';
import type { RoleContext } from '../types.js';
import type { Task } from '../../modules/index.js';
import { oneOf, pick, shared, stringList, text, wholeNumber } from '../vars.js';
import { apt, command, file, group, internalTls, service, template, user } from '../../modules/tasks.js';
import { DB_CA_FILE } from '../../modules/mysql/tls.js';
import { pkiDirFor } from '../../pki/index.js';

/**
 * The app's restart handler. Exported for the mysql role: on a host that is a database server AND a web server,
 * that role's task owns the database CA bundle and notifies this (a notification outlives its play: the handler
 * runs at the end of the web servers' play, or on a later run if this one dies first).
 */
export const APP_RESTART = 'restart app';
const RESTART = APP_RESTART;
const NAME = /^[A-Za-z0-9_]{1,32}$/;
/** The example application (the reference site's): what `app_source: ""` deploys. */
export const EXAMPLE_APP = path.join(PACKAGE_ROOT, 'examples', 'app');
/** Set by the role from other vars: app_env may not set them too. */
const RESERVED_ENV = ['PORT', 'HOST', 'NODE_ENV', 'DB_WRITE_HOST', 'DB_READ_HOST', 'DB_PORT', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'DB_SSL_CA'];

/** A host the mysql role serves a database on (site.yml's db_primary and db_replica plays). */
export function isDatabaseServer(ctx: { host: { groups: readonly string[] } }): boolean {
  return ctx.host.groups.includes(GROUPS.dbPrimary) || ctx.host.groups.includes(GROUPS.dbReplica);
}

/**
 * Where the app writes and reads; undefined when the site has no database (an app that needs none).
 * With the database endpoint (`db_endpoint`, the default): its loopback addresses on this host, which
 * follow the writer by health checks. Without: the primary, and the host's own database when it is
 * a database host, else the primary. `app_db_write_host`/`app_db_read_host` win either way.
 */
export function databaseHosts(ctx: RoleContext<AppVars>): { write: string; read: string } | undefined {
  const primaries = ctx.hostsIn(GROUPS.dbPrimary);
  const primary = primaries[0] ? privateAddress(primaries[0]) : '';
  const endpoint = ctx.vars.db_endpoint && primary !== '';
  const local = isDatabaseServer(ctx) ? privateAddress(ctx.host) : primary;
  const write = ctx.vars.app_db_write_host || (endpoint ? DB_ENDPOINT_WRITE_ADDRESS : primary);
  const read = ctx.vars.app_db_read_host || (endpoint ? DB_ENDPOINT_READ_ADDRESS : local);
  return write && read ? { write, read } : undefined;
}

const SAFE_PATH = /^\/[A-Za-z0-9_./-]+$/;
const absolutePath = () => text((s) => SAFE_PATH.test(s) && !s.includes('..'), 'an absolute path', 'absolute path');
const address = () => text(/^[A-Za-z0-9.:-]*$/, 'an address or host name', 'address or host name');
/**
 * A command line systemd and sh both take as it is: no quotes, no $ (systemd would expand it), no %
 * (a systemd specifier), no shell metacharacters. Anything richer belongs in a script in the release.
 */
const plainCommand = () => text(/^[A-Za-z0-9 _./=:,+@-]*$/, 'letters, digits, spaces and _ . / = : , + @ - only (put anything richer in a script in the release)', 'command line');
const shellCommand = () => z.string().refine((s) => !/[\0\n]/.test(s), { error: 'one line, no NUL' });
const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

const vars = withRules(z.object({
  app_port: shared('app_port', 'The port the app listens on (its `PORT`).'),
  ...pick('mysql_port', 'private_address', 'app_db_name', 'mysql_app_user', 'mysql_app_password', 'http_port', 'domain', 'backend_tls', 'db_endpoint'),
  app_user: text(NAME, 'letters, digits and _ only, 1 to 32 characters', 'user name').default('app').describe('System user and group the app runs as.'),
  app_dir: absolutePath().default('/opt/app').describe('Where releases live: `releases/<id>`, `shared/`, `current` (owned by root).'),
  app_listen_address: address().min(1, { error: 'required' }).default('127.0.0.1').describe('Listen address (its `HOST`): only Nginx in front of it reaches the app.'),
  app_db_write_host: address().default('').describe("Where the app writes; `\"\"`: this host's database endpoint (`127.0.0.2`, db_endpoint role), or with `db_endpoint: false` the `db_primary` host's private address."),
  app_db_read_host: address().default('').describe("Where the app reads; `\"\"`: this host's database endpoint (`127.0.0.3`), or with `db_endpoint: false` the host's own private address when it is a database host, else the primary."),
  app_packages: stringList(() => true, 'a non-empty list of package names', 'list of package names', { nonEmpty: true })
    .default(['nodejs', 'node-mysql'])
    .describe('Debian packages the app needs (the runtime).'),
  app_source: z.string().default('').describe('The release to install on a host that has none: a directory or an archive (.tar.gz, .tgz, .tar) on the control machine; `""`: the example app (`examples/app`). `provision deploy` rolls a new one.'),
  app_start_command: plainCommand().min(1, { error: 'required' }).default('node server.js').describe('Starts a release, in its directory, as the app user.'),
  app_health_path: text(/^\/[A-Za-z0-9._~\/-]*$/, 'an absolute URL path like /health', 'URL path').default('/health').describe('Answers 200 when the app is ready (checked through Nginx by a deploy).'),
  app_env: z
    .record(z.string(), z.union([z.string(), z.instanceof(Secret)]))
    // Each bad name is reported on its own key (a record's key schema would only say "Invalid key").
    .superRefine((env, ctx) => {
      for (const k of Object.keys(env)) {
        if (!envName.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'an environment variable name (letters, digits, _)' });
        else if (RESERVED_ENV.includes(k)) ctx.addIssue({ code: 'custom', path: [k], message: `set by the role: ${RESERVED_ENV.join(', ')}` });
      }
    })
    .default({})
    .describe('More environment for the app (values may be `!secret`s): in the env file (0640 root:app), never in argv or the unit.'),
  app_keep_releases: wholeNumber(2, undefined, 'a whole number ≥ 2 (the current release and the one a rollback goes to)').default(5).describe('Releases kept on a host; older ones are removed after a deploy.'),
  app_build: shellCommand().default('').describe('Run in a new release on the host, as the app user, before it can go live (e.g. `npm ci --omit=dev`); `""`: none.'),
  app_migrate_command: shellCommand().default('').describe('Run once per deploy, on the first web host, in the new release as the app user with its environment, before any host switches; `""`: none.'),
  deploy_batch: wholeNumber(1, undefined, 'a whole number ≥ 1').default(1).describe('Web servers switched at once by `provision deploy`.'),
  deploy_drain_timeout: wholeNumber(1, undefined, 'a whole number of seconds ≥ 1').default(30).describe('Seconds a deploy waits for a drained server to finish its sessions.'),
  deploy_health_timeout: wholeNumber(1, undefined, 'a whole number of seconds ≥ 1').default(60).describe('Seconds a deploy waits for a restarted app to answer its health check.'),
  app_build_local: shellCommand().default('').describe('Run on the control machine, in a copy of the release source (never the source itself), before it is packed (e.g. `npm ci && npm run build`); its failure stops the deploy before any host is touched. The release id is the hash of the built copy.'),
  app_repository: text((s) => s === '' || isRepositoryUrl(s), 'an ssh URL: ssh://user@host[:port]/path or user@host:path', 'ssh URL').default('').describe('A git repository the web hosts fetch releases from (over SSH, as the app user); `""`: releases come from `app_source`. Needs `app_deploy_key_file` and `app_repository_host_key`.'),
  app_ref: text((s) => { try { return Boolean(checkRef(s, 'app_ref')); } catch { return false; } }, 'a branch, a tag, HEAD or a full commit', 'git ref').default('HEAD').describe('What `provision deploy` (and the first release) takes from `app_repository` when no `--release REF` is given.'),
  app_deploy_key_file: z.string().default('').describe('The deploy key (private half) on the control machine, mode 0600: sent to the host on stdin into a 0600 file of the app user for the fetch only, removed after.'),
  app_repository_host_key: text((s) => s === '' || isKnownHostsLine(s), 'one known_hosts line: "host keytype base64" (ssh-keyscan prints it; check it out of band)', 'known_hosts line').default('').describe("The git server's host key, pinned: the only key ssh accepts for the fetch (StrictHostKeyChecking=yes)."),
  app_nodejs_source: oneOf(['debian', 'nodesource'] as const).default('debian').describe("Where Node.js comes from: Debian's `nodejs`, or the NodeSource apt repository (a deb822 source signed by a key verified by fingerprint, the major pinned)."),
  app_nodejs_major: wholeNumber(16, 99, 'a Node.js major version like 20').default(20).describe('The Node.js major the app declares (`app_nodejs_source: nodesource`): the repository of that major, and apt pinned to it.'),
  app_nodejs_repository: text((s) => s === '' || /^https?:\/\/[A-Za-z0-9.:-]+(\/[A-Za-z0-9._~\/-]*)?$/.test(s), 'an http(s) URL', 'URL').default('').describe('The apt repository (`""`: `https://deb.nodesource.com/node_<major>.x`, suite `nodistro`).'),
  app_nodejs_key_file: z.string().default('').describe("The repository's signing key (armored or binary) on the control machine."),
  app_nodejs_key_fingerprint: text((s) => s === '' || /^[0-9A-Fa-f]{40}$/.test(s.replace(/\s+/g, '')), 'a 40 hex digit OpenPGP fingerprint', 'fingerprint').default('').describe('The fingerprint the signing key must have (checked on the control machine before anything is written; a mismatch stops the run).'),
}), [
  {
    says: '`app_repository` needs `app_deploy_key_file` and `app_repository_host_key`.',
    check: (v) => [
      ...problemIf(Boolean(v.app_repository) && !v.app_deploy_key_file, 'app_deploy_key_file', 'required with app_repository (the deploy key on the control machine)'),
      ...problemIf(Boolean(v.app_repository) && !v.app_repository_host_key, 'app_repository_host_key', "required with app_repository (the git server's host key, a known_hosts line)"),
    ],
  },
  {
    says: '`app_nodejs_source: nodesource` needs `app_nodejs_key_file` and `app_nodejs_key_fingerprint`.',
    check: (v) => [
      ...problemIf(v.app_nodejs_source === 'nodesource' && !v.app_nodejs_key_file, 'app_nodejs_key_file', 'required with app_nodejs_source: nodesource'),
      ...problemIf(v.app_nodejs_source === 'nodesource' && !v.app_nodejs_key_fingerprint, 'app_nodejs_key_fingerprint', 'required with app_nodejs_source: nodesource'),
    ],
  },
]);
export type AppVars = z.output<typeof vars>;

/** The app's environment as the env file has it, in a fixed order. */
export function appEnvironment(ctx: RoleContext<AppVars>): Array<[string, string | Secret]> {
  const v = ctx.vars;
  const db = databaseHosts(ctx);
  return [
    ['NODE_ENV', 'production'],
    ['HOST', v.app_listen_address],
    ['PORT', String(v.app_port)],
    ...(db
      ? ([
          ['DB_WRITE_HOST', db.write],
          ['DB_READ_HOST', db.read],
          ['DB_PORT', String(v.mysql_port)],
          ['DB_NAME', v.app_db_name],
          ['DB_USER', v.mysql_app_user],
          ['DB_PASSWORD', v.mysql_app_password],
          // The database servers require TLS: the app verifies them with the internal CA's bundle (0644).
          ['DB_SSL_CA', DB_CA_FILE],
        ] as Array<[string, string | Secret]>)
      : []),
    ...Object.entries(v.app_env).sort(([a], [b]) => a.localeCompare(b)),
  ];
}

/** The converge's first release (only on a host without `current`): app_ref fetched on the host, or app_source sent. */
function firstRelease(v: AppVars, l: ReturnType<typeof appLayout>) {
  const build = v.app_build || undefined;
  const unless = sh`test -e ${l.current}`;
  if (v.app_repository) {
    const key = readDeployKey(v.app_deploy_key_file);
    return command(
      `first release: ${v.app_ref} of ${v.app_repository}`,
      // The deploy key on stdin (a Secret: masked, never in argv); the host resolves app_ref itself.
      { cmd: gitInstallScript(l, { user: v.app_user, src: { url: v.app_repository, hostKey: v.app_repository_host_key }, rev: v.app_ref, build, link: true }), stdin: key, unless },
      { notify: RESTART },
    );
  }
  const source = v.app_source || EXAMPLE_APP;
  const release = v.app_build_local ? buildLocal(source, v.app_build_local) : localRelease(source);
  return command(
    `first release ${release.id} (${release.label ?? path.basename(release.source)})`,
    {
      cmd: `base64 -d | { ${installScript(l, release.id, { user: v.app_user, build })}\n} && ${linkCurrentScript(l, release.id)}`,
      // The command module's stdin is text: the gzip'd tar travels as base64 (binary-safe).
      stdin: packedRelease(release).toString('base64'),
      unless,
    },
    { notify: RESTART },
  );
}

export const role = defineRole({
  name: 'app',
  description:
    "The team's application on the web servers, as releases (docs/deploy.md): `app_dir/releases/<id>` (the id is the content " +
    'hash), `shared/` (the env file, data kept across releases), `current` (a symlink switched by rename). The runtime is ' +
    "Debian's `nodejs`; the app runs under its own system user with a hardened unit, in `current`, listening on " +
    '`127.0.0.1:app_port` (Nginx in front of it is the only client), its environment from `shared/env`. A host with no release ' +
    "gets `app_source` (by default the example app, `examples/app`: it writes to the MySQL primary, reads the local database, " +
    'its schema comes from the app_schema role on the primary); `provision deploy` rolls new releases through the load balancers.',
  vars,
  tasks(ctx) {
    const v = ctx.vars;
    const appUser = v.app_user;
    const l = appLayout(v.app_dir);
    const packages = v.app_repository ? [...new Set([...v.app_packages, 'git', 'openssh-client'])] : v.app_packages;
    return [
      ...nodejsRepositoryTasks(v),
      apt(v.app_nodejs_source === 'nodesource' ? `install the runtime (Node.js ${v.app_nodejs_major} from ${nodejsRepositoryUrl(v)})` : 'install the runtime (Debian packages)', {
        packages,
        // A source just added must be read: the lists are refreshed whatever their age.
        ...(v.app_nodejs_source === 'nodesource' ? { cache_valid_time: 0 } : {}),
      }),
      group(`group ${appUser}`, { name: appUser, system: true }),
      user(`system user ${appUser}`, { name: appUser, group: appUser, system: true, home: l.dir, create_home: false, shell: '/usr/sbin/nologin' }),
      file(`${l.dir} (releases, owned by root)`, { path: l.dir, state: 'directory', owner: 'root', group: 'root', mode: '0755' }),
      file(`${l.releases}`, { path: l.releases, state: 'directory', owner: 'root', group: 'root', mode: '0755' }),
      file(`${l.shared} (readable by ${appUser}, not writable)`, { path: l.shared, state: 'directory', owner: 'root', group: appUser, mode: '0750' }),
      file(`${l.data} (written by ${appUser})`, { path: l.data, state: 'directory', owner: appUser, group: appUser, mode: '0750' }),
      // The CA the database servers' certificates come from, for DB_SSL_CA (a new CA restarts the app, which reads it at start).
      // One owner of the file per host: on a database host the mysql role writes it (earlier, for the server) and
      // notifies this role's restart; a second task here would find it written and a fresh host's plan would list a
      // change its run never makes.
      internalTls(
        `database CA bundle ${DB_CA_FILE} (the app verifies the database servers with it)`,
        { pki_dir: pkiDirFor(ctx.inventory), ca_label: ctx.inventory.name, ca_file: DB_CA_FILE },
        { notify: RESTART, when: databaseHosts(ctx) !== undefined && !isDatabaseServer(ctx) },
      ),
      template(
        `environment ${l.envFile}`,
        {
          src: ctx.file('templates/env.njk'),
          dest: l.envFile,
          owner: 'root',
          group: appUser,
          mode: '0640',
          sensitive: true,
          vars: { env_lines: appEnvironment(ctx) },
        },
        { notify: RESTART },
      ),
      // No schema here: the app_schema role (site.yml, on db_primary before the web servers) is its one owner in
      // both topologies; two owners on a primary that is also a web server made a plan list a change its run skips.
      // The first release only: once a host runs one, releases change by `provision deploy` (rolling), never by a converge.
      firstRelease(v, l),
      template(
        `systemd unit ${APP_UNIT}`,
        {
          src: ctx.file('templates/app.service.njk'),
          dest: APP_UNIT_PATH,
          mode: '0644',
          // systemd-analyze wants the unit under its own name.
          validate: `d=$(mktemp -d) && cp %s "$d/${APP_UNIT}" && systemd-analyze verify "$d/${APP_UNIT}"; r=$?; rm -rf "$d"; exit $r`,
          vars: { ...v, current: l.current, env_file: l.envFile, data_dir: l.data },
        },
        { notify: RESTART },
      ),
      service(`${APP_UNIT} running and enabled`, { name: APP_UNIT, state: 'started', enabled: true, daemon_reload: true }),
    ];
  },
  handlers: () => [service(RESTART, { name: APP_UNIT, state: 'restarted', daemon_reload: true })],
});
