/** The app role without a host: the env file, the unit and the first release it renders. */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Facts } from '../../../src/facts/index.ts';
import type { Host, Inventory } from '../../../src/inventory/index.ts';
import { renderTemplate, type Task } from '../../../src/modules/index.ts';
import { EXAMPLE_APP, role as app, type AppVars } from '../../../src/roles/app/index.ts';
import { localRelease } from '../../../src/deploy/release.ts';
import { Secret } from '../../../src/util/secrets.ts';
import { problemsOf, roleVarsFor } from '../roles/helpers.ts';

const host = (name: string, address: string, groups: string[], vars: Record<string, unknown> = {}): Host =>
  ({ name, address, groups, vars, connection: {} }) as unknown as Host;
const web1 = host('web-01', '10.9.0.11', ['webservers', 'db_primary']);
const web2 = host('web-02', '10.9.0.12', ['webservers', 'db_replica'], { private_address: '192.168.5.12' });
const PASSWORD = 'pw-with-"quote"-and-$dollar';

function expand(h: Host, groups: Record<string, Host[]>, vars: Record<string, unknown> = {}): Task[] {
  return app.tasks({
    host: h,
    facts: {} as Facts,
    vars: roleVarsFor<AppVars>(app, h, { mysql_app_password: new Secret('mysql_app_password', PASSWORD), ...h.vars, ...vars }),
    inventory: { file: '/srv/site/prod.yml', name: 'prod' } as unknown as Inventory,
    hostsIn: (g) => groups[g] ?? [],
    file: (rel) => path.resolve(import.meta.dirname, '../../../src/roles/app', rel),
  });
}

function rendered(tasks: Task[], dest: string): string {
  const t = tasks.find((x) => x.module === 'template' && (x.params as { dest: string }).dest === dest)!;
  const p = t.params as { src: string; vars: Record<string, unknown> };
  return renderTemplate(p.src, p.vars);
}

const site = { db_primary: [web1], db_replica: [web2], webservers: [web1, web2] };

describe('app role', () => {
  it('the env file: the contract, the database of the site, app_env; quoted the way systemd reads it back', () => {
    const tasks = expand(web2, site, { app_env: { GREETING: 'a "b" $c \\d' } });
    const env = rendered(tasks, '/opt/app/shared/env');
    expect(env).toContain('PORT="3000"\n');
    expect(env).toContain('HOST="127.0.0.1"\n');
    // The database endpoint (db_endpoint, the default): this host's loopback addresses, following the writer.
    expect(env).toContain('DB_WRITE_HOST="127.0.0.2"\n');
    expect(env).toContain('DB_READ_HOST="127.0.0.3"\n');
    // Without it: the primary and this host's own database, by private address.
    const direct = rendered(expand(web2, site, { db_endpoint: false }), '/opt/app/shared/env');
    expect(direct).toContain('DB_WRITE_HOST="10.9.0.11"\n');
    expect(direct).toContain('DB_READ_HOST="192.168.5.12"\n');
    expect(env).toContain(`DB_PASSWORD=${JSON.stringify(PASSWORD)}\n`);
    // The database servers require TLS: the app verifies them with the internal CA's bundle, which the role puts there.
    expect(env).toContain('DB_SSL_CA="/etc/provision/tls/db-ca.pem"\n');
    const ca = tasks.find((x) => x.module === 'internal_tls')!;
    expect(ca.params).toEqual({ pki_dir: '/srv/site/prod.pki', ca_label: 'prod', ca_file: '/etc/provision/tls/db-ca.pem' });
    // web-02 is a database host here: the mysql role owns the bundle (and notifies the app's restart), not this task.
    expect(ca.when).toBe(false);
    // A web server that is no database host: the app role puts the bundle there itself.
    const web3 = host('web-03', '10.9.0.13', ['webservers']);
    const own = expand(web3, { ...site, webservers: [web1, web2, web3] }, {}).find((x) => x.module === 'internal_tls')!;
    expect(own.when).not.toBe(false);
    expect(env).toContain('GREETING="a \\"b\\" $c \\\\d"\n');
    const t = tasks.find((x) => (x.params as { dest?: string }).dest === '/opt/app/shared/env')!;
    expect(t.params).toMatchObject({ owner: 'root', group: 'app', mode: '0640', sensitive: true });
  });

  it('a site without a database: no DB_ settings (an app that needs none)', () => {
    const env = rendered(expand(web1, { webservers: [web1] }), '/opt/app/shared/env');
    expect(env).not.toContain('DB_');
    expect(env).toContain('PORT="3000"');
    expect(expand(web1, { webservers: [web1] }).find((x) => x.module === 'internal_tls')!.when).toBe(false);
  });

  it('the unit runs current with the env file: no secret and no environment in it', () => {
    const unit = rendered(expand(web1, site), '/etc/systemd/system/app.service');
    expect(unit).toContain('WorkingDirectory=/opt/app/current\n');
    expect(unit).toContain('EnvironmentFile=/opt/app/shared/env\n');
    expect(unit).toContain('ExecStart=/bin/sh -c "exec node server.js"\n');
    expect(unit).toContain('ReadWritePaths=/opt/app/shared/data\n');
    expect(unit).not.toContain(PASSWORD);
    expect(unit).not.toMatch(/^Environment=/m);
  });

  it('the first release is the example app, sent as a gzip tar only to a host without current', () => {
    const t = expand(web1, site).find((x) => x.module === 'command')!;
    const p = t.params as { cmd: string; stdin: string; unless: string };
    const id = localRelease(EXAMPLE_APP).id;
    expect(t.name).toContain(`first release ${id}`);
    expect(p.unless).toBe('test -e /opt/app/current');
    const files = execFileSync('tar', ['-tzf', '-'], { input: Buffer.from(p.stdin, 'base64'), encoding: 'utf8' });
    expect(files.split('\n')).toContain('./server.js');
    expect(p.cmd).toContain(`mv -T "$d/.current.new" "$d/current"`);
  });

  it('refuses a start command systemd would expand, a reserved env name, and keeping fewer than 2 releases', () => {
    const problems = problemsOf(app, web1, { mysql_app_password: new Secret('x', 'y'), app_start_command: 'node $MAIN', app_env: { PORT: '1' }, app_keep_releases: 1 }).join('\n');
    expect(problems).toMatch(/app_start_command: letters, digits/);
    expect(problems).toMatch(/app_env\.PORT: set by the role/);
    expect(problems).toMatch(/app_keep_releases: a whole number ≥ 2/);
  });
});
