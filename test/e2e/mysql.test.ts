/**
 * MySQL primary/replica and the application on the converged site. Both access paths are used:
 * the hosts' own client over SSH (onHost), and mysql2 from this machine through an SSH tunnel
 * (SshConnection.forward) from a web server — so the app user, its password and the address-bound
 * grants are exercised exactly as the app uses them. The hosts come from the inventory's groups
 * (db_primary, db_replica, webservers): on the 3-host site the web servers are the databases, in the
 * split topology the databases are hosts of their own and the app reaches them over the network.
 *
 * PROVISION_E2E_PLAYBOOK picks the playbook converged again here (default: the site playbook).
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadInventory, type Host, type Inventory } from '../../src/inventory/index.js';
import { SshConnection } from '../../src/transport/index.js';
import { Secret } from '../../src/util/secrets.js';
import { caBundle, loadCa, pkiDirFor } from '../../src/pki/index.js';
import { changedTasks, group, INVENTORY, onHost, only, provision, type CliResult } from './lab-env.js';

const PLAYBOOK = process.env.PROVISION_E2E_PLAYBOOK;
const PRIMARY = only('db_primary');
const REPLICA = only('db_replica');
/** Where the app runs: the first writes, the second reads back (each through its own database endpoint). */
const [WRITER, READER] = group('webservers') as [string, string];

let inventory: Inventory;
const connections: SshConnection[] = [];

function host(name: string): Host {
  const h = inventory.hosts.get(name);
  if (!h) throw new Error(`inventory ${INVENTORY} has no host ${name}`);
  return h;
}
const privateAddr = (name: string) => (host(name).vars.private_address as string | undefined) ?? host(name).address;
const appPort = () => (host(PRIMARY).vars.app_port as number | undefined) ?? 3000;
const appUser = () => (host(PRIMARY).vars.mysql_app_user as string | undefined) ?? 'app';
const appDb = () => (host(PRIMARY).vars.app_db_name as string | undefined) ?? 'app';
const replicationUser = () => (host(PRIMARY).vars.mysql_replication_user as string | undefined) ?? 'replicator';

function appPassword(): string {
  const pw = host(PRIMARY).vars.mysql_app_password;
  if (!(pw instanceof Secret)) throw new Error('mysql_app_password is not a secret in the inventory');
  return pw.reveal();
}

/** The web server a tunnel to a database host goes through: the host itself when it is one (the app's grants are for web servers). */
const tunnelHost = (name: string) => (group('webservers').includes(name) ? name : WRITER);

/** A mysql2 connection to a host's MySQL, tunnelled through a web server's SSH (the server sees that web server's address). */
async function tunnelledMysql(name: string): Promise<mysql.Connection> {
  const ssh = await SshConnection.connect(host(tunnelHost(name)));
  connections.push(ssh);
  const stream = await ssh.forward(privateAddr(name), 3306);
  // The servers accept TLS only (docs/database.md): verified against the inventory's internal CA, as the app does.
  const ca = loadCa(pkiDirFor(inventory));
  if (!ca) throw new Error(`no internal CA beside ${INVENTORY}: the site was never converged`);
  return mysql.createConnection({ stream: stream as never, user: appUser(), password: appPassword(), database: appDb(), connectTimeout: 10_000, ssl: { ca: caBundle(ca), rejectUnauthorized: true } });
}

/** The replica's SHOW SLAVE STATUS, read with the host's own client. */
async function replicaStatus(): Promise<Record<string, string>> {
  const r = await onHost(REPLICA, "mysql --batch -e 'SHOW SLAVE STATUS'");
  expect(r.code, r.stderr).toBe(0);
  const [header, values] = r.stdout.trim().split('\n');
  expect(values, 'the replica has a replication configuration').toBeDefined();
  const h = header!.split('\t');
  const v = values!.split('\t');
  return Object.fromEntries(h.map((k, i) => [k, v[i] ?? '']));
}

async function sql(name: string, query: string): Promise<string> {
  const r = await onHost(name, `mysql --batch --skip-column-names <<'EOF'\n${query}\nEOF`);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

/** An HTTP request to the app on a host, from the host itself (it listens on loopback only). */
async function appRequest(name: string, method: string, path: string, body?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const script = `const r=require('http').request({host:'127.0.0.1',port:${appPort()},path:${JSON.stringify(path)},method:${JSON.stringify(method)},headers:{'content-type':'text/plain'}},s=>{let b='';s.on('data',d=>b+=d);s.on('end',()=>{process.stdout.write(JSON.stringify({status:s.statusCode,body:b}))})});r.on('error',e=>{console.error(e.message);process.exit(1)});r.end(${JSON.stringify(body ?? '')});`;
  const r = await onHost(name, `node -e ${shellQuote(script)}`);
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { status: number; body: string };
  return { status: out.status, json: JSON.parse(out.body) as Record<string, unknown> };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function converge(): Promise<CliResult> {
  return provision(['--json', '--limit', `${PRIMARY},${REPLICA}`, ...(PLAYBOOK ? ['--playbook', PLAYBOOK] : [])]);
}

async function waitForRunning(): Promise<Record<string, string>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = await replicaStatus();
    if ((s.Slave_IO_Running === 'Yes' && s.Slave_SQL_Running === 'Yes') || Date.now() > deadline) return s;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

beforeAll(() => {
  inventory = loadInventory(INVENTORY);
});

afterAll(() => {
  for (const c of connections) c.close();
});

describe('MySQL replication', () => {
  test('the replica follows the primary by GTID with both threads running and a known lag', async () => {
    const s = await replicaStatus();
    expect(s.Master_Host).toBe(privateAddr(PRIMARY));
    expect(s.Master_User).toBe(replicationUser());
    expect(s.Slave_IO_Running).toBe('Yes');
    expect(s.Slave_SQL_Running).toBe('Yes');
    expect(s.Using_Gtid).toBe('Slave_Pos');
    expect(s.Seconds_Behind_Master).toMatch(/^\d+$/);
    expect(s.Last_SQL_Errno).toBe('0');
    expect(await sql(PRIMARY, 'SELECT @@server_id')).not.toBe(await sql(REPLICA, 'SELECT @@server_id'));
  });

  test('the replica is read-only and refuses a write from the app user (mysql2 through an SSH tunnel)', async () => {
    const replica = await tunnelledMysql(REPLICA);
    try {
      const [rows] = await replica.query('SELECT @@read_only AS ro, CURRENT_USER() AS who');
      expect((rows as Array<{ ro: number; who: string }>)[0]).toEqual({ ro: 1, who: `${appUser()}@${privateAddr(tunnelHost(REPLICA))}` });
      await expect(replica.query("INSERT INTO notes (body, host) VALUES ('must not land', 'e2e')")).rejects.toMatchObject({ errno: 1290 });
    } finally {
      await replica.end();
    }
  });

  test('a row written on the primary by the app user (mysql2 through a tunnel) is read back on the replica', async () => {
    const primary = await tunnelledMysql(PRIMARY);
    const marker = `tunnel-${Date.now()}`;
    let id: number;
    try {
      const [res] = await primary.query('INSERT INTO notes (body, host) VALUES (?, ?)', [marker, 'e2e']);
      id = (res as { insertId: number }).insertId;
    } finally {
      await primary.end();
    }
    let got = '';
    for (let i = 0; i < 30 && got !== marker; i++) {
      got = await sql(REPLICA, `SELECT body FROM ${appDb()}.notes WHERE id = ${id}`);
      if (got !== marker) await new Promise((r) => setTimeout(r, 1000));
    }
    expect(got).toBe(marker);
  });

  test('the replication user has replication privileges only', async () => {
    const grants = (await sql(PRIMARY, `SHOW GRANTS FOR '${replicationUser()}'@'${privateAddr(REPLICA)}'`)).split('\n');
    expect(grants).toHaveLength(1);
    const m = /^GRANT (.+) ON \*\.\* TO /.exec(grants[0]!);
    expect(m, grants[0]).not.toBeNull();
    expect(m![1]).toBe('REPLICATION SLAVE');
    // Nowhere else either: no database- or table-level grants.
    expect(await sql(PRIMARY, `SELECT COUNT(*) FROM mysql.db WHERE User = '${replicationUser()}'`)).toBe('0');
  });

  test('no anonymous users, no test database, root only on the local socket', async () => {
    for (const h of [PRIMARY, REPLICA]) {
      expect(await sql(h, "SELECT COUNT(*) FROM mysql.user WHERE User = '' OR (User = 'root' AND Host <> 'localhost')")).toBe('0');
      expect(await sql(h, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'")).toBe('0');
    }
  });
});

describe('the application', () => {
  test('a note posted to one web server (written on the primary) is read back by the other from the replica', async () => {
    const posted = await appRequest(WRITER, 'POST', '/api/notes', `written through ${WRITER}`);
    expect(posted.status).toBe(201);
    expect(posted.json.host).toBe(WRITER);
    const id = posted.json.id as number;
    expect(id).toBeGreaterThan(0);
    let got = await appRequest(READER, 'GET', `/api/notes/${id}`);
    for (let i = 0; i < 30 && got.status === 404; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      got = await appRequest(READER, 'GET', `/api/notes/${id}`);
    }
    expect(got.status).toBe(200);
    // Read through the reader's database endpoint (127.0.0.3), which reads from the replica.
    expect(got.json).toMatchObject({ id, body: `written through ${WRITER}`, written_by: WRITER, host: READER, read_host: '127.0.0.3' });
    expect((await appRequest(READER, 'GET', '/api/notes/999999999')).status).toBe(404);
  });

  test('GET / names the web server that answered; /health answers 200', async () => {
    for (const h of [WRITER, READER]) {
      const page = await appRequest(h, 'GET', '/');
      expect(page.status).toBe(200);
      expect(page.json.host).toBe(h);
      // Writes through this web server's database endpoint, which follows the writable server.
      expect(page.json.write_host).toBe('127.0.0.2');
      expect((await appRequest(h, 'GET', '/health')).status).toBe(200);
    }
  });

  test('the app runs as its own user with the hardened unit, its environment (the database password) readable by it only', async () => {
    const r = await onHost(WRITER, 'systemctl show -p User -p NoNewPrivileges -p ProtectSystem -p CapabilityBoundingSet app.service; stat -c "%a %U %G" /opt/app/shared/env');
    expect(r.stdout).toContain('User=app');
    expect(r.stdout).toContain('NoNewPrivileges=yes');
    expect(r.stdout).toContain('ProtectSystem=strict');
    expect(r.stdout).toMatch(/CapabilityBoundingSet=\n/);
    expect(r.stdout).toContain('640 root app');
  });
});

describe('converging again', () => {
  test('changes nothing and does not reset the working replica', async () => {
    const before = await replicaStatus();
    const gtidBefore = await sql(REPLICA, 'SELECT @@gtid_slave_pos');
    const r = await converge();
    expect(r.code, r.stderr).toBe(0);
    expect(changedTasks(r)).toEqual([]);
    const after = await replicaStatus();
    // A RESET SLAVE would start over at a new relay log and an empty GTID position.
    expect(after.Relay_Log_File).toBe(before.Relay_Log_File);
    expect(Number(after.Relay_Log_Pos)).toBeGreaterThanOrEqual(Number(before.Relay_Log_Pos));
    const seq = (g: string) => Number(g.split('-').pop());
    const gtidAfter = await sql(REPLICA, 'SELECT @@gtid_slave_pos');
    expect(gtidAfter).not.toBe('');
    expect(seq(gtidAfter)).toBeGreaterThanOrEqual(seq(gtidBefore));
  });

  test('a stopped replica is started again, reported as a change, with its position kept', async () => {
    await sql(REPLICA, 'STOP SLAVE');
    const stopped = await replicaStatus();
    expect(stopped.Slave_IO_Running).toBe('No');
    const gtidStopped = await sql(REPLICA, 'SELECT @@gtid_slave_pos');
    try {
      const r = await converge();
      expect(r.code, r.stderr).toBe(2);
      const changed = changedTasks(r);
      expect(changed.map((e) => `${e.host} ${e.module}`)).toEqual([`${REPLICA} mysql_replication`]);
      expect(JSON.stringify(changed[0]!.changes)).toContain('start');
      const s = await replicaStatus();
      expect(s.Slave_IO_Running).toBe('Yes');
      expect(s.Slave_SQL_Running).toBe('Yes');
      expect(Number((await sql(REPLICA, 'SELECT @@gtid_slave_pos')).split('-').pop())).toBeGreaterThanOrEqual(Number(gtidStopped.split('-').pop()));
      const again = await converge();
      expect(again.code, again.stderr).toBe(0);
      expect(changedTasks(again)).toEqual([]);
    } finally {
      // Whatever happened above, leave the site replicating for the tests after this one.
      if ((await replicaStatus()).Slave_IO_Running !== 'Yes') await sql(REPLICA, 'START SLAVE');
      await waitForRunning();
    }
  });
});
