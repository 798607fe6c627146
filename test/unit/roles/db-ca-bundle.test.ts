/**
 * One owner per file per host in the site playbook, and the app restarted when the database CA bundle changes.
 *
 * A fresh 3-host site's plan listed `app/database CA bundle /etc/provision/tls/db-ca.pem … create` on web-01 and
 * web-02, and the run made no change there: the mysql role had written the same file earlier in the run. Two tasks
 * of one host writing one file make a plan list a change its run does not make (the dry run cannot know what the CA
 * not made yet will write), and the second owner's notification (the app's restart) never fires on a CA rotation.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { Task } from '../../../src/modules/index.ts';
import { DB_CA_FILE } from '../../../src/modules/mysql/tls.ts';
import { builtinRoles } from '../../../src/roles/builtin.ts';
import { APP_RESTART } from '../../../src/roles/app/index.ts';
import { roleTasksFor, SPLIT_SITE, THREE_HOST_SITE, type SiteHosts } from './helpers.ts';

const SITE_PLAYBOOK = path.resolve(import.meta.dirname, '../../../playbooks/site.yml');
const plays = parse(readFileSync(SITE_PLAYBOOK, 'utf8')) as Array<{ name: string; hosts: string; roles: string[] }>;
/** The roles that own database files (the others write none of them, and need vars of their own). */
const DATA_ROLES = new Set(['mysql', 'app_schema', 'db_health', 'db_endpoint', 'app']);

/** The files a task writes whole (content), if any. */
function filesWritten(t: Task): string[] {
  const p = t.params as Record<string, unknown>;
  if (t.when === false) return [];
  if (t.module === 'template' || t.module === 'copy') return [String(p.dest)];
  if (t.module === 'internal_tls') return [p.ca_file, p.cert_file].filter((f): f is string => typeof f === 'string');
  return [];
}

/** Each task of the site playbook's data-tier roles that runs on the host, in play order, with its role. */
function siteTasks(site: SiteHosts, host: string): Array<{ role: string; task: Task }> {
  const groups = ['all', ...site[host]!.groups];
  return plays
    .filter((p) => groups.includes(p.hosts))
    .flatMap((p) => p.roles.filter((r) => DATA_ROLES.has(r)))
    .flatMap((name) => roleTasksFor(builtinRoles.find((r) => r.name === name)!, site, host).map((task) => ({ role: name, task })));
}

const TOPOLOGIES: Array<[string, SiteHosts]> = [
  ['3-host (databases on the web servers)', THREE_HOST_SITE],
  ['split (databases on hosts of their own)', SPLIT_SITE],
];

describe('the database CA bundle has one owner per host', () => {
  for (const [topology, site] of TOPOLOGIES) {
    it(`${topology}: no two tasks of the site write one file on a host; each web or database host gets the bundle once`, () => {
      for (const host of Object.keys(site)) {
        const writers = new Map<string, string[]>();
        for (const { role, task } of siteTasks(site, host)) for (const f of filesWritten(task)) writers.set(f, [...(writers.get(f) ?? []), `${role}/${task.name}`]);
        const shared = [...writers].filter(([, by]) => by.length > 1);
        expect(shared, `${host}: files written by two tasks`).toEqual([]);
        const needsBundle = site[host]!.groups.some((g) => ['webservers', 'db_primary', 'db_replica'].includes(g));
        expect(writers.get(DB_CA_FILE)?.length ?? 0, `${host}: tasks writing ${DB_CA_FILE}`).toBe(needsBundle ? 1 : 0);
      }
    });

    it(`${topology}: the bundle's owner restarts the app where the app runs (it reads DB_SSL_CA at start), and only there`, () => {
      for (const host of Object.keys(site)) {
        const owner = siteTasks(site, host).find(({ task }) => filesWritten(task).includes(DB_CA_FILE));
        if (!owner) continue;
        const runsApp = site[host]!.groups.includes('webservers');
        expect(owner.task.notify?.includes(APP_RESTART) ?? false, `${host}: ${owner.role}/${owner.task.name} notifies "${APP_RESTART}"`).toBe(runsApp);
      }
    });
  }

  it(`"${APP_RESTART}" is the app role's handler and restarts its unit; the database plays come before the web servers' (a notification waits for the play whose handler it is)`, () => {
    const app = builtinRoles.find((r) => r.name === 'app')!;
    const handler = roleTasksFor(app, SPLIT_SITE, 'web-01', {}, 'handlers').find((h) => h.name === APP_RESTART);
    expect(handler).toMatchObject({ module: 'service', params: { state: 'restarted' } });
    const web = plays.findIndex((p) => p.roles.includes('app'));
    for (const group of ['db_primary', 'db_replica']) expect(plays.findIndex((p) => p.hosts === group && p.roles.includes('mysql'))).toBeLessThan(web);
  });
});
