/**
 * Database traffic over verified TLS on real hosts (instance `t5dbtls`, 10.113.0.0/24): web-01 the
 * MariaDB primary, web-02 its replica, converged by the real CLI with the mysql role as the site runs
 * it (one play for db_primary, then one for db_replica). Both hosts are in `webservers` so the role
 * makes the app's accounts for them; the "app" here is the MariaDB client on web-02 logging in as the
 * app user with the CA bundle the app gets (DB_SSL_CA).
 *
 *   1. each server has its certificate from the internal CA (0600 mysql), the CA bundle (0644),
 *      require_secure_transport, the accounts REQUIRE SSL, replication over TLS with the server
 *      verified;
 *   2. a bounded capture on the bridge while rows replicate and the app user writes and reads:
 *      no plaintext SQL, no row data, no password; and the same check does see plaintext SQL on a
 *      test-only port without TLS (it can fail);
 *   3. a client without TLS is refused (by require_secure_transport, and by REQUIRE SSL alone);
 *      a client verifying with another CA fails; with the internal CA it gets in over TLS;
 *   4. a plaintext site (no certificates, no TLS settings, accounts REQUIRE NONE, replication without
 *      TLS) is moved to TLS by one converge while rows are written: replication keeps every row and
 *      runs over verified TLS; the next converge changes nothing;
 *   5. the name is verified, not only the chain: a client (the MariaDB client, ssl-verify-server-cert)
 *      and the replica (MASTER_SSL_VERIFY_SERVER_CERT) dialing the primary by a name its certificate
 *      does not carry are refused; by its private address (an IP SAN) they get in;
 *   6. every database certificate also carries the inventory's shared name (db.<inventory>.internal, for
 *      apps behind the endpoint that check a name): a client verifying that name gets in.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, labDown, labUp } from '../../src/lab/index.ts';
import { caBundle, ensureCa } from '../../src/pki/index.ts';
import { changedTasks, provision, type CliResult } from '../e2e/lab-env.ts';
import { captureOnBridge } from './bridge-capture.ts';
import { failures, pollUntil, taskResult, writeInventory } from './faults-helpers.ts';

const NAME = 't5dbtls';
const SUBNET = '10.113.0';
const PRIMARY = 'web-01';
const REPLICA = 'web-02';
const PRIMARY_ADDRESS = `${SUBNET}.11`;
const REPLICATION_PASSWORD = 'Repl-Passw0rd-tls4';
const APP_PASSWORD = 'App-Passw0rd-tls44';
const env = {
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: REPLICATION_PASSWORD,
  PROVISION_SECRET_MYSQL_APP_PASSWORD: APP_PASSWORD,
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'Exp-Passw0rd-tls44',
};
const CA_FILE = '/etc/provision/tls/db-ca.pem';
const CERT_FILE = '/etc/mysql/tls/server.pem';
const CNF = '/etc/mysql/mariadb.conf.d/60-provision.cnf';
/** Every run of the CLI is bounded: a hang fails the test instead of stalling the suite. */
const RUN_BOUND_MS = 600_000;
const REPLICATION_TASK = `replicate from ${PRIMARY} (${PRIMARY_ADDRESS})`;

let dir: string;
let inv: string;
let playbook: string;

function expectSuccess(r: CliResult): void {
  expect(failures(r), r.stdout + r.stderr).toEqual([]);
  expect([0, 2], r.stdout + r.stderr).toContain(r.code);
}

/** A converge of the pair; `ms` its duration (a figure, never asserted). */
async function converge(): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  const r = await provision(['-i', inv, '-p', playbook, '--json'], { env, timeoutMs: RUN_BOUND_MS });
  return { ...r, ms: Date.now() - t0 };
}

/** A shell script on a host (bounded); its result, not checked. */
const sh = (host: string, script: string, timeoutMs = 60_000) => hostExec(host, ['sh', '-c', script], NAME, { timeoutMs });

/** SQL through the host's own client (root over the local socket); the rows as text. */
async function sql(host: string, query: string): Promise<string> {
  const r = await sh(host, `mysql --batch --skip-column-names <<'EOF'\n${query}\nEOF`);
  expect(r.code, `${host}: ${query}\n${r.stderr}`).toBe(0);
  return r.stdout.trim();
}

async function slaveStatus(): Promise<Record<string, string>> {
  const r = await hostExec(REPLICA, ['mysql', '--batch', '-e', 'SHOW SLAVE STATUS'], NAME);
  const [header, values] = r.stdout.trim().split('\n');
  if (!header || !values) return {};
  const v = values.split('\t');
  return Object.fromEntries(header.split('\t').map((k, i) => [k, v[i] ?? '']));
}

/** The replica has applied everything the primary has written (polled, bounded). */
async function caughtUp(): Promise<void> {
  const target = await sql(PRIMARY, 'SELECT @@gtid_binlog_pos');
  const reached = await pollUntil(async () => (await sql(REPLICA, 'SELECT @@gtid_slave_pos')) === target, 60_000, 500);
  expect(reached, `the replica reaches ${target}: ${JSON.stringify(await slaveStatus())}`).toBe(true);
}

/**
 * The app user's login on web-02 toward the primary, as a client option file (0600, the password
 * not in argv); `tls` adds the CA bundle the app gets and verification of the server's certificate.
 */
async function clientFile(name: string, tls: string | undefined): Promise<string> {
  const file = `/root/${name}.cnf`;
  const lines = ['[client]', 'user=app', `password=${APP_PASSWORD}`, `host=${PRIMARY_ADDRESS}`, 'database=app', ...(tls ? [`ssl-ca=${tls}`, 'ssl-verify-server-cert'] : ['skip-ssl'])];
  const r = await sh(REPLICA, `umask 077 && cat > ${file} <<'EOF'\n${lines.join('\n')}\nEOF`);
  expect(r.code, r.stderr).toBe(0);
  return file;
}

/** The MariaDB client on web-02 with an option file; the result (exit code, output). */
const client = (file: string, query: string) => sh(REPLICA, `mysql --defaults-extra-file=${file} --batch --skip-column-names -e ${JSON.stringify(query)} 2>&1`);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-t5dbtls-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${SUBNET}.0/24`, only: [PRIMARY, REPLICA], pebble: false });
  inv = writeInventory(dir, NAME, SUBNET, {
    hosts: `  ${PRIMARY}: { address: ${PRIMARY_ADDRESS}, groups: [webservers, db_primary] }\n  ${REPLICA}: { address: ${SUBNET}.12, groups: [webservers, db_replica] }\n`,
    tail: `vars:
  mysql_replication_password: !secret mysql_replication_password
  mysql_app_password: !secret mysql_app_password
  mysql_exporter_password: !secret mysql_exporter_password
  mysql_replication_verify_timeout: 60
`,
  });
  playbook = path.join(dir, 'site.yml');
  writeFileSync(playbook, '- name: MySQL primary\n  hosts: db_primary\n  roles: [mysql]\n- name: MySQL replica\n  hosts: db_replica\n  roles: [mysql]\n');
  const first = await converge();
  expectSuccess(first);
  console.log(`FIGURE first converge of a TLS primary/replica pair: ${first.ms} ms`);
  await sql(PRIMARY, 'CREATE TABLE IF NOT EXISTS app.probe (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(100) NOT NULL)');
});

afterAll(async () => {
  await labDown(NAME);
});

describe('database traffic over verified TLS', () => {
  it('(1) certificates from the internal CA, TLS required, replication verifying the primary', async () => {
    for (const host of [PRIMARY, REPLICA]) {
      const files = await sh(host, `stat -c '%n %a %U:%G' ${CERT_FILE} ${CA_FILE} /etc/mysql/tls`);
      expect(files.stdout).toContain(`${CERT_FILE} 600 mysql:mysql`);
      expect(files.stdout).toContain(`${CA_FILE} 644 root:root`);
      expect(files.stdout).toContain('/etc/mysql/tls 750 root:mysql');
      const vars = await sql(host, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('have_ssl', 'require_secure_transport', 'ssl_ca')");
      expect(vars).toContain('have_ssl\tYES');
      expect(vars).toContain('require_secure_transport\tON');
      expect(vars).toContain(`ssl_ca\t${CA_FILE}`);
    }
    // The accounts the network reaches must use TLS (replicated from the primary: the same on the replica).
    expect(await sql(REPLICA, "SELECT CONCAT(User, '@', Host, ' ', ssl_type) FROM mysql.user WHERE User IN ('app', 'replicator') ORDER BY 1")).toBe(
      [`app@${SUBNET}.11 ANY`, `app@${SUBNET}.12 ANY`, `replicator@${SUBNET}.12 ANY`].join('\n'),
    );
    const s = await slaveStatus();
    expect([s.Slave_IO_Running, s.Slave_SQL_Running, s.Master_SSL_Allowed, s.Master_SSL_CA_File, s.Master_SSL_Verify_Server_Cert]).toEqual(['Yes', 'Yes', 'Yes', CA_FILE, 'Yes']);
    // "A second converge changes nothing" is (4)'s last step (on the same site, after its move to TLS).
  });

  it('(2) a bounded capture on the bridge during replication and app traffic: no plaintext SQL, no row data, no password', async () => {
    const appTls = await clientFile('app-tls', CA_FILE);
    const marker = `replicated-row-${Date.now()}`;
    const appMarker = `app-row-${Date.now()}`;
    const cap = await captureOnBridge({ instance: NAME, dir, filter: 'tcp port 3306' }, async () => {
      // Rows written on the primary (over its socket) replicate to web-02 across the bridge.
      await sql(PRIMARY, `USE app; INSERT INTO app.probe (body) SELECT CONCAT('${marker}-', seq) FROM seq_1_to_50`);
      // The app user writes and reads across the bridge, as the app does.
      for (let i = 0; i < 5; i++) {
        const r = await client(appTls, `INSERT INTO app.probe (body) VALUES ('${appMarker}-${i}'); SELECT COUNT(*) FROM app.probe WHERE body LIKE '${appMarker}-%'`);
        expect(r.code, r.stdout).toBe(0);
        expect(r.stdout.trim()).toBe(String(i + 1));
      }
      await caughtUp();
    });
    expect(await sql(REPLICA, `SELECT COUNT(*) FROM app.probe WHERE body LIKE '${marker}-%' OR body LIKE '${appMarker}-%'`)).toBe('55');
    expect(cap.packets).toBeGreaterThan(20);
    expect(cap.handshakes).toBeGreaterThan(0);
    for (const plain of ['INSERT', 'SELECT', 'app.probe', marker, appMarker, APP_PASSWORD, REPLICATION_PASSWORD]) expect(cap.text, `"${plain}" crossed the bridge in clear`).not.toContain(plain);
    console.log(`FIGURE capture of replication and app traffic (tcp port 3306): ${cap.packets} packets, ${cap.handshakes} with a TLS handshake record, no plaintext SQL, row or password`);
  });

  it('(2b) the same capture check does see plaintext SQL from a client without TLS on a test-only port (it can fail)', async () => {
    // Test only: a one-connection relay on the primary from TCP 3399 to the server's local socket (which the
    // server counts as secure transport), so that a client without TLS can speak SQL across the bridge.
    const relay = [
      'import socket, threading',
      'l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      `l.bind(('${PRIMARY_ADDRESS}', 3399)); l.listen(1); l.settimeout(60)`,
      'c, _ = l.accept(); u = socket.socket(socket.AF_UNIX); u.connect("/run/mysqld/mysqld.sock")',
      'def pipe(a, b):',
      '    while True:',
      '        d = a.recv(65536)',
      '        if not d: break',
      '        b.sendall(d)',
      '    try: b.shutdown(socket.SHUT_WR)',
      '    except OSError: pass',
      't = threading.Thread(target=pipe, args=(u, c)); t.start(); pipe(c, u); t.join()',
    ].join('\n');
    const started = await sh(PRIMARY, `cat > /root/relay.py <<'EOF'\n${relay}\nEOF\nsystemd-run --quiet --collect --unit=t4-plain-relay --property=RuntimeMaxSec=90 python3 /root/relay.py`);
    expect(started.code, started.stderr).toBe(0);
    expect(await pollUntil(async () => (await sh(PRIMARY, 'ss -ltn | grep -q ":3399 "')).code === 0, 15_000, 200), 'the relay listens').toBe(true);
    const cap = await captureOnBridge({ instance: NAME, dir, filter: 'tcp port 3399' }, async () => {
      // root through the relay: the server sees a local socket from uid 0 (unix_socket authentication).
      const r = await sh(REPLICA, `mysql --skip-ssl -h ${PRIMARY_ADDRESS} -P 3399 -u root --batch --skip-column-names -e "SELECT 'plaintext-probe-2b'" 2>&1`);
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toContain('plaintext-probe-2b');
    });
    expect(cap.text).toContain('SELECT');
    expect(cap.text).toContain('plaintext-probe-2b');
  });

  it('(3) a client without TLS is refused (require_secure_transport, and REQUIRE SSL alone); one verifying with another CA fails; the internal CA gets in', async () => {
    // require_secure_transport on its own: an account without REQUIRE SSL (made here, for the test) is refused in clear.
    await sql(PRIMARY, `CREATE USER IF NOT EXISTS 'plainprobe'@'${SUBNET}.12' IDENTIFIED BY 'Plain-Probe-Passw0rd'`);
    const probeFile = '/root/plainprobe.cnf';
    expect((await sh(REPLICA, `umask 077 && printf '[client]\\nuser=plainprobe\\npassword=Plain-Probe-Passw0rd\\nhost=${PRIMARY_ADDRESS}\\nskip-ssl\\n' > ${probeFile}`)).code).toBe(0);
    const refused = await client(probeFile, 'SELECT 1');
    expect(refused.code).not.toBe(0);
    // MariaDB 10.11 answers this refusal as "Access denied" (seen on the lab); the same login over TLS gets in,
    // so it is the transport that was refused, not the password.
    expect(refused.stdout).toMatch(/Access denied for user 'plainprobe'|insecure transport are prohibited/);
    const overTls = await sh(REPLICA, `mysql --defaults-extra-file=${probeFile} --ssl --ssl-ca=${CA_FILE} --ssl-verify-server-cert --batch --skip-column-names -e 'SELECT 1' 2>&1`);
    expect(overTls.code, overTls.stdout).toBe(0);
    await sql(PRIMARY, `DROP USER 'plainprobe'@'${SUBNET}.12'`);

    // The app's account without TLS: refused (REQUIRE SSL is checked first, "Access denied")…
    const plain = await clientFile('app-plain', undefined);
    const appRefused = await client(plain, 'SELECT 1');
    expect(appRefused.code).not.toBe(0);
    expect(appRefused.stdout).toMatch(/Access denied for user 'app'|insecure transport are prohibited/);

    // …and REQUIRE SSL on the account holds on its own (with the server-wide switch off for a moment).
    await sql(PRIMARY, 'SET GLOBAL require_secure_transport = OFF');
    try {
      const denied = await client(plain, 'SELECT 1');
      expect(denied.code).not.toBe(0);
      expect(denied.stdout).toMatch(/Access denied for user 'app'/);
    } finally {
      await sql(PRIMARY, 'SET GLOBAL require_secure_transport = ON');
    }

    // Another CA (a real one, made the way the site's is): the server's certificate does not verify.
    const other = caBundle(await ensureCa(path.join(dir, 'other.pki'), { label: 'other' }));
    expect((await sh(REPLICA, `cat > /root/other-ca.pem <<'EOF'\n${other.trim()}\nEOF`)).code).toBe(0);
    const wrongCa = await client(await clientFile('app-other-ca', '/root/other-ca.pem'), 'SELECT 1');
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.stdout).toMatch(/certificate|SSL|TLS/i);

    const ok = await client(await clientFile('app-tls', CA_FILE), "SHOW SESSION STATUS LIKE 'Ssl_version'");
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/Ssl_version\tTLSv1\.[23]/);
  });

  it('(4) one converge moves a plaintext site to TLS while rows are written: every row replicated, then over verified TLS; the next converge changes nothing', async () => {
    // The site as it was before TLS: no certificate files, no TLS settings, accounts REQUIRE NONE, replication in clear.
    for (const host of [PRIMARY, REPLICA]) {
      const r = await sh(host, `sed -i -e '/^ssl_/d' -e '/^tls_version/d' -e '/^require_secure_transport/d' ${CNF} && rm -rf /etc/mysql/tls /etc/provision/tls && systemctl restart mariadb`, 120_000);
      expect(r.code, r.stderr).toBe(0);
    }
    await sql(PRIMARY, `ALTER USER 'replicator'@'${SUBNET}.12' REQUIRE NONE; ALTER USER 'app'@'${SUBNET}.11' REQUIRE NONE; ALTER USER 'app'@'${SUBNET}.12' REQUIRE NONE`);
    await sql(REPLICA, "STOP SLAVE; CHANGE MASTER TO MASTER_SSL = 0, MASTER_SSL_CA = '', MASTER_SSL_VERIFY_SERVER_CERT = 0; START SLAVE");
    const plainRunning = await pollUntil(async () => {
      const s = await slaveStatus();
      return s.Slave_IO_Running === 'Yes' && s.Slave_SQL_Running === 'Yes' && s.Master_SSL_Allowed === 'No' ? s : undefined;
    }, 60_000, 500);
    expect(plainRunning, JSON.stringify(await slaveStatus())).toBeDefined();
    expect(await sql(PRIMARY, "SHOW GLOBAL VARIABLES LIKE 'have_ssl'")).not.toContain('YES');

    // Writes on the primary (its socket) through the whole converge, bounded in count; each acknowledged one is
    // listed (during the primary's restart an insert fails: not acknowledged, not counted).
    const writes = sh(PRIMARY, "for i in $(seq 1 200); do mysql -e \"INSERT INTO app.probe (body) VALUES ('during-converge-$i')\" 2>/dev/null && echo acked-$i; sleep 0.25; done; true", 180_000);
    const r = await converge();
    const written = await writes;
    expectSuccess(r);
    expect(written.code).toBe(0);
    const acked = written.stdout.split('\n').filter((l) => l.startsWith('acked-')).map((l) => `during-converge-${l.slice('acked-'.length)}`);
    expect(acked.length).toBeGreaterThan(100);
    expect(taskResult(r, REPLICA, REPLICATION_TASK)?.status).toBe('changed');
    console.log(`FIGURE converge of a plaintext pair to TLS: ${r.ms} ms`);

    await caughtUp();
    const onReplica = new Set((await sql(REPLICA, "SELECT body FROM app.probe WHERE body LIKE 'during-converge-%'")).split('\n'));
    expect(acked.filter((b) => !onReplica.has(b)), 'acknowledged rows missing on the replica').toEqual([]);
    console.log(`FIGURE rows acknowledged by the primary during the move to TLS: ${acked.length} of 200 attempts, all on the replica`);
    const s = await slaveStatus();
    expect([s.Slave_IO_Running, s.Slave_SQL_Running, s.Last_IO_Errno, s.Last_SQL_Errno, s.Master_SSL_Allowed, s.Master_SSL_Verify_Server_Cert]).toEqual(['Yes', 'Yes', '0', '0', 'Yes', 'Yes']);
    expect(await sql(REPLICA, "SELECT CONCAT(User, '@', Host, ' ', ssl_type) FROM mysql.user WHERE User IN ('app', 'replicator') AND ssl_type <> 'ANY'")).toBe('');

    const again = await converge();
    expectSuccess(again);
    expect(changedTasks(again).map((e) => `${String(e.host)}: ${String(e.task)}`)).toEqual([]);
  });

  it('(5) the name is checked too: a client or a replica dialing a name the certificate does not carry is refused; the private address (an IP SAN) is not', async () => {
    // A second name for the primary's address on web-02 only: the same server, the same CA, a name not in its certificate.
    expect((await sh(REPLICA, `grep -q ' not-in-cert.test$' /etc/hosts || echo '${PRIMARY_ADDRESS} not-in-cert.test' >> /etc/hosts`)).code).toBe(0);
    const appTls = await clientFile('app-tls', CA_FILE);
    const byName = await sh(REPLICA, `mysql --defaults-extra-file=${appTls} -h not-in-cert.test --batch --skip-column-names -e 'SELECT 1' 2>&1`);
    expect(byName.code, byName.stdout).not.toBe(0);
    expect(byName.stdout).toMatch(/certificate|SSL|TLS|name/i);
    const byAddress = await client(appTls, 'SELECT 1');
    expect(byAddress.code, byAddress.stdout).toBe(0);

    // Replication (MASTER_SSL_VERIFY_SERVER_CERT = 1) pointed at that name: the IO thread is refused; back to the address, it runs.
    await sql(REPLICA, "STOP SLAVE; CHANGE MASTER TO MASTER_HOST = 'not-in-cert.test'; START SLAVE");
    try {
      const refused = await pollUntil(async () => {
        const s = await slaveStatus();
        return s.Slave_IO_Running !== 'Yes' && s.Last_IO_Errno !== '0' && s.Last_IO_Errno !== undefined ? s : undefined;
      }, 60_000, 500);
      expect(refused, JSON.stringify(await slaveStatus())).toBeDefined();
      console.log(`replication toward a name not in the certificate: IO error ${refused!.Last_IO_Errno}: ${refused!.Last_IO_Error}`);
      expect(refused!.Last_IO_Error).toMatch(/certificate|SSL|TLS|name/i);
    } finally {
      await sql(REPLICA, `STOP SLAVE; CHANGE MASTER TO MASTER_HOST = '${PRIMARY_ADDRESS}'; START SLAVE`);
    }
    await sql(PRIMARY, "INSERT INTO app.probe (body) VALUES ('after-name-check')");
    await caughtUp();
    const s = await slaveStatus();
    expect([s.Slave_IO_Running, s.Slave_SQL_Running, s.Master_SSL_Verify_Server_Cert]).toEqual(['Yes', 'Yes', 'Yes']);
  });

  it('(6) every database certificate carries the inventory\'s shared name (db.<inventory>.internal): a client checking that name gets in on either server', async () => {
    const shared = `db.${path.basename(inv).replace(/\.ya?ml$/, '')}.internal`;
    for (const host of [PRIMARY, REPLICA]) {
      const san = await sh(host, `openssl x509 -in ${CERT_FILE} -noout -ext subjectAltName`);
      expect(san.stdout).toContain(`DNS:${shared}`);
    }
    // The shared name resolving to the primary on web-02 (as an app would dial it): verified by name, it gets in.
    expect((await sh(REPLICA, `sed -i '/ ${shared}$/d' /etc/hosts && echo '${PRIMARY_ADDRESS} ${shared}' >> /etc/hosts`)).code).toBe(0);
    const appTls = await clientFile('app-tls', CA_FILE);
    const byShared = await sh(REPLICA, `mysql --defaults-extra-file=${appTls} -h ${shared} --batch --skip-column-names -e 'SELECT @@hostname' 2>&1`);
    expect(byShared.code, byShared.stdout).toBe(0);
    expect(byShared.stdout.trim()).toBe(PRIMARY);
  });
});
