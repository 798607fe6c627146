/**
 * The split topology (inventory/prod-split.yml) on real lab hosts, instance `e5split` (10.114.0.0/24):
 * lb-01, web-01, web-02 and the databases on hosts of their own, db-01 (primary) and db-02 (replica),
 * converged by the site playbook (playbooks/site.yml) as a user runs it.
 *
 *   1. the firewalls: on a database host 3306 only from the web servers and the other database host,
 *      the health agent's port only from the web servers (the load balancer is refused);
 *      the agent answers /write 200 on the primary only, /read 200 on the replica only;
 *   2. a request through the load balancer writes and reads the database: 200; the app's endpoint sends
 *      writes to db-01 and reads to db-02 (the servers' ids say which);
 *   3. a second converge changes nothing;
 *   4. `provision db switchover --to db-02` while a client on web-01 writes through the endpoint
 *      (127.0.0.2, no other address ever given to it): writes resume on db-02 with no change to any web
 *      server; every acknowledged id is on both servers; the pause is measured (FIGURE);
 *   5. a replica that stops replicating: reads fall back to the primary, and come back once it runs;
 *   6. one health agent per database host answers hundreds of checks: its PID and restart count unchanged,
 *      no failed unit, no unit per check (the former socket and template units are gone), no journal line;
 *   7. the agent killed: systemd starts it again and it answers;
 *   8. fail closed: the primary's server stopped, the endpoints mark it out (FIGURE: how soon); started
 *      again, the same agent process reconnects and answers from the server's state.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostExec, inClient, labDown, labPaths, labUp } from '../../src/lab/index.ts';
import { changedTasks, provision, ROOT, type CliResult } from '../e2e/lab-env.ts';
import { failures, pollUntil } from './faults-helpers.ts';

const NAME = 'e5split';
const PREFIX = '10.114.0';
const HOSTS = { 'lb-01': 10, 'web-01': 11, 'web-02': 12, 'db-01': 21, 'db-02': 22 } as const;
type HostName = keyof typeof HOSTS;
const ADDRESS = (h: HostName) => `${PREFIX}.${HOSTS[h]}`;
const DOMAIN = 'www.foobar.com';
const APP_PASSWORD = 'App-Passw0rd-20241';
const env = {
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'Repl-Passw0rd-2024',
  PROVISION_SECRET_MYSQL_APP_PASSWORD: APP_PASSWORD,
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'Exp-Passw0rd-20241',
};
const RUN_BOUND_MS = 1_500_000;
const SITE = path.join(ROOT, 'playbooks', 'site.yml');
const WRITE = '127.0.0.2';
const READ = '127.0.0.3';
// server ids: the mysql role derives them from the address (third octet × 256 + fourth).
const SERVER_ID: Record<string, string> = { 'db-01': '21', 'db-02': '22' };
let dir: string;
let inv: string;

function inventory(primary: 'db-01' | 'db-02'): string {
  const p = labPaths(NAME);
  const file = path.join(dir, `split-${primary}.yml`);
  const db = (h: 'db-01' | 'db-02') => `  ${h}: { address: ${ADDRESS(h)}, groups: [${h === primary ? 'db_primary' : 'db_replica'}] }\n`;
  writeFileSync(
    file,
    `defaults:
  user: root
  identity_file: ${p.sshKey}
  known_hosts: ${p.knownHosts}
  connect_timeout: 5
hosts:
  lb-01: { address: ${ADDRESS('lb-01')}, groups: [loadbalancers] }
  web-01: { address: ${ADDRESS('web-01')}, groups: [webservers] }
  web-02: { address: ${ADDRESS('web-02')}, groups: [webservers] }
${db('db-01')}${db('db-02')}groups:
  databases:
    children: [db_primary, db_replica]
vars:
  domain: ${DOMAIN}
  admin_cidrs: [${PREFIX}.1/32]
  monitoring_cidrs: [${PREFIX}.1/32]
  certificate_mode: selfsigned
  # The common role's slow extras (a baseline of every file, a rootkit scan, upgrades): not what this file is about.
  aide: false
  rootkit_check: false
  security_updates_on_converge: false
  mysql_replication_password: !secret mysql_replication_password
  mysql_app_password: !secret mysql_app_password
  mysql_exporter_password: !secret mysql_exporter_password
  mysql_replication_verify_timeout: 60
`,
  );
  return file;
}

const converge = (i: string): Promise<CliResult> => provision(['-i', i, '-p', SITE, '--json'], { env, timeoutMs: RUN_BOUND_MS });
const db = (...args: string[]) => provision(['db', ...args], { env, timeoutMs: 300_000 });

function expectSuccess(r: CliResult): void {
  expect(failures(r), r.stdout.slice(-4000) + r.stderr).toEqual([]);
  expect([0, 2], r.stdout.slice(-4000) + r.stderr).toContain(r.code);
}

async function sh(host: HostName, script: string, timeoutMs = 60_000): Promise<string> {
  const r = await hostExec(host, ['sh', '-c', script], NAME, { timeoutMs });
  expect(r.code, `${host}: ${script}\n${r.stdout}${r.stderr}`).toBe(0);
  return r.stdout.trim();
}
const sql = (host: HostName, query: string) => sh(host, `mysql --batch --skip-column-names <<'EOF'\n${query}\nEOF`);
/**
 * The app's own client (Debian's node-mysql, what the web servers have; no mysql CLI there), as the app (TLS, the CA's chain verified):
 * `node /root/q.js HOST SQL` prints the first column of the first row; `node /root/writer.js` is the writer
 * of test (4). The app's password from a 0600 file, never argv.
 */
const QUERY_JS = `const mysql = require('mysql');
const fs = require('fs');
// Over TLS, as the app: the servers refuse a client without it (require_secure_transport); the chain checked with the app's CA.
const ssl = { ca: fs.readFileSync('/etc/provision/tls/db-ca.pem', 'utf8'), rejectUnauthorized: true };
const login = { port: 3306, user: 'app', password: fs.readFileSync('/root/app.pw', 'utf8'), database: 'app', connectTimeout: 3000, ssl };
exports.login = login;
if (require.main === module) {
  const [host, sql] = process.argv.slice(2);
  const c = mysql.createConnection({ ...login, host });
  c.query(sql, (err, rows) => {
    if (err) { console.error(String(err.code) + ' ' + err.message); process.exit(1); }
    const row = rows[0] || {};
    console.log(String(Object.values(row)[0]));
    c.end();
  });
}
`;
/**
 * Ids 1, 2, … each inserted through the write endpoint on a new connection until acknowledged (a duplicate
 * key on a retry: an earlier attempt committed); bounded: 6000 ids, 150 s, or the stop file.
 */
const WRITER_JS = `const mysql = require('mysql');
const fs = require('fs');
const { login } = require('/root/q.js');
const out = '/root/writer';
for (const f of ['.acked', '.failed', '.stop']) fs.rmSync(out + f, { force: true });
const end = Date.now() + 150000;
const insert = (id) => new Promise((resolve) => {
  const c = mysql.createConnection({ ...login, host: process.argv[2] });
  c.query('INSERT INTO writes (id) VALUES (?)', [id], (err) => { c.destroy(); resolve(err); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  let id = 1;
  while (id <= 6000 && Date.now() < end && !fs.existsSync(out + '.stop')) {
    const err = await insert(id);
    if (!err || err.code === 'ER_DUP_ENTRY') { fs.appendFileSync(out + '.acked', id + ' ' + Date.now() + '\\n'); id++; await sleep(20); }
    else { fs.appendFileSync(out + '.failed', id + ' ' + Date.now() + ' ' + err.code + '\\n'); await sleep(50); }
  }
})();
`;
const viaEndpoint = (host: HostName, address: string, query: string) => sh(host, `node /root/q.js ${address} ${JSON.stringify(query)}`);
/**
 * Which server answers a read through `host`'s endpoint, polled while the read server changes: a query in
 * flight on a server that is being marked out is cut by design (`on-marked-down shutdown-sessions`: the
 * app reconnects), so one that fails is "not yet", counted in `cut`, not a test failure (it failed CI once).
 */
function readServerPoll(host: HostName, cut: string[]) {
  return async () => {
    const r = await hostExec(host, ['sh', '-c', `node /root/q.js ${READ} 'SELECT @@server_id'`], NAME, { timeoutMs: 60_000 });
    if (r.code !== 0) cut.push(r.stderr.trim() || r.stdout.trim());
    return r.code === 0 ? r.stdout.trim() : '';
  };
}
/** What the health agent on `dbHost` answers `from` a host: the HTTP status, or "refused"/"timeout". */
const agent = async (from: HostName, dbHost: HostName, pathname: string) => {
  const r = await hostExec(from, ['sh', '-c', `curl -sS --max-time 3 -o /dev/null -w '%{http_code}' http://${ADDRESS(dbHost)}:9200${pathname} || echo " failed"`], NAME, { timeoutMs: 20_000 });
  return r.stdout.trim();
};

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'provision-e5split-'));
  await labDown(NAME);
  await labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: Object.keys(HOSTS), pebble: false });
  inv = inventory('db-01');
  const t0 = Date.now();
  const r = await converge(inv);
  console.log(`FIGURE split topology (5 hosts) first converge of the site: ${Math.round((Date.now() - t0) / 1000)} s, exit ${r.code}`);
  expectSuccess(r);
  for (const h of ['web-01', 'web-02'] as const) {
    await sh(h, `umask 077; printf %s '${APP_PASSWORD}' > /root/app.pw; cat > /root/q.js <<'EOF'\n${QUERY_JS}EOF\ncat > /root/writer.js <<'EOF'\n${WRITER_JS}EOF`);
  }
}, RUN_BOUND_MS + 120_000);

afterAll(async () => {
  await labDown(NAME);
});

describe('databases on their own hosts, the app following the writer through its endpoint', () => {
  it('(1) the firewalls: 3306 from the web servers and the other database host only; the agent from the web servers only', async () => {
    const rules = await sh('db-01', 'ufw status');
    const mysqlFrom = [...rules.matchAll(/^3306\/tcp\s+ALLOW\s+(\S+)/gm)].map((m) => m[1]).sort();
    expect(mysqlFrom).toEqual([ADDRESS('db-02'), ADDRESS('web-01'), ADDRESS('web-02')].sort());
    const agentFrom = [...rules.matchAll(/^9200\/tcp\s+ALLOW\s+(\S+)/gm)].map((m) => m[1]).sort();
    expect(agentFrom).toEqual([ADDRESS('web-01'), ADDRESS('web-02')].sort());
    // Seen from the hosts: the agent answers a web server, not the load balancer.
    expect(await agent('web-02', 'db-01', '/write')).toBe('200');
    expect(await agent('web-02', 'db-02', '/write')).toBe('503');
    expect(await agent('web-02', 'db-02', '/read')).toBe('200');
    expect(await agent('web-02', 'db-01', '/read')).toBe('503');
    expect(await agent('lb-01', 'db-01', '/write')).toMatch(/failed$/);
    // The web servers run no database and no packaged haproxy.service; the endpoint listens on loopback only.
    expect(await sh('web-01', 'systemctl is-active provision-db-endpoint; systemctl is-enabled haproxy || true; ss -Hltn "sport = :3306" | awk "{print \\$4}" | sort')).toBe(
      `active\ndisabled\n${WRITE}:3306\n${READ}:3306`,
    );
  });

  it('(2) a request through the load balancer writes and reads the database: 200; writes go to db-01, reads to db-02', async () => {
    // Each request records a visit on the primary (127.0.0.2) and counts visits on the replica (127.0.0.3):
    // replication is asynchronous, so the first request may count before its own visit arrived. At most
    // 10 requests, 500 ms apart, until one counts a visit.
    let body = '';
    for (let i = 0; i < 10; i++) {
      const r = await inClient(['curl', '-sS', '-k', '--max-time', '10', '--resolve', `${DOMAIN}:443:${ADDRESS('lb-01')}`, '-w', '\n%{http_code}', `https://${DOMAIN}/`], NAME, { timeoutMs: 30_000 });
      // The app's JSON ends with a newline, then curl's status line: the first line is the body, the last the status.
      const lines = r.stdout.trim().split('\n');
      expect(lines.at(-1), r.stdout + r.stderr).toBe('200');
      body = lines[0]!;
      if (JSON.parse(body).visits >= 1) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    expect(JSON.parse(body)).toMatchObject({ write_host: WRITE, read_host: READ });
    expect(JSON.parse(body).visits).toBeGreaterThanOrEqual(1);
    for (const h of ['web-01', 'web-02'] as const) {
      expect(await viaEndpoint(h, WRITE, 'SELECT @@server_id')).toBe(SERVER_ID['db-01']);
      expect(await viaEndpoint(h, READ, 'SELECT @@server_id')).toBe(SERVER_ID['db-02']);
    }
  });

  it('(3) a second converge of the site changes nothing', async () => {
    const again = await converge(inv);
    expect(changedTasks(again).map((e) => `${e.host}: ${e.task}`)).toEqual([]);
    expect(again.code, again.stdout.slice(-3000) + again.stderr).toBe(0);
  });

  it('(4) switchover to db-02 under writes through the endpoint: writes resume with no change on the web servers, none lost', async () => {
    await sql('db-01', 'CREATE TABLE app.writes (id INT PRIMARY KEY, at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))');
    const envBeforeProbe = await viaEndpoint('web-01', WRITE, 'SELECT COUNT(*) FROM writes');
    expect(envBeforeProbe).toBe('0');
    const envBefore = await sh('web-01', 'sha256sum /opt/app/shared/env /etc/provision/db-endpoint/haproxy.cfg');
    const writing = hostExec('web-01', ['node', '/root/writer.js', WRITE], NAME, { timeoutMs: 200_000 });
    const acked = async () => Number(await sh('web-01', 'wc -l < /root/writer.acked 2>/dev/null || echo 0'));
    expect(await pollUntil(async () => (await acked()) >= 30, 60_000, 250), 'the client writes').toBeTruthy();
    const before = await acked();
    const result = await db('switchover', '-i', inv, '--to', 'db-02', '--writes-timeout', '5', '--catch-up-timeout', '30');
    expect(result.code, result.stdout + result.stderr).toBe(2);
    const doneAt = Date.now();
    expect(await pollUntil(async () => (await acked()) >= before + 60, 60_000, 250), `writes resume after the switchover\n${result.stdout}`).toBeTruthy();
    await sh('web-01', 'touch /root/writer.stop');
    const w = await writing;
    expect(w.code, w.stdout + w.stderr).toBe(0);
    const rows = (await sh('web-01', 'cat /root/writer.acked')).split('\n').map((l) => l.split(' ').map(Number) as [number, number]);
    const failed = (await sh('web-01', 'cat /root/writer.failed 2>/dev/null || true')).split('\n').filter(Boolean).map((l) => l.split(' '));
    const failedAttempts = failed.length;
    const failedSpan = failed.length ? `failures from ${Number(failed[0]![1]) - rows[0]![1]} to ${Number(failed.at(-1)![1]) - rows[0]![1]} ms after the first ack (${[...new Set(failed.map((f) => f[2]))].join(', ')})` : 'no failures';
    let pauseMs = 0;
    for (let i = 1; i < rows.length; i++) pauseMs = Math.max(pauseMs, rows[i]![1] - rows[i - 1]![1]);
    const refused = /writes were refused for (\d+) ms/.exec(result.stdout)?.[1];
    console.log(
      `FIGURE switchover db-01 → db-02, writes through web-01's endpoint (${WRITE}, agent polls every 250 ms; checks every 1000 ms, 250 ms while out or changing, fall 2, rise 2): ${rows.length} ids acknowledged, ` +
        `longest gap between acknowledgements ${pauseMs} ms (tool's read-only window ${refused} ms), ${failedAttempts} failed attempts retried, ${failedSpan}; measured ${Date.now() - doneAt} ms after the tool returned to 60 more ids`,
    );
    // No app config pushed: the env file and the endpoint's config are what they were.
    expect(await sh('web-01', 'sha256sum /opt/app/shared/env /etc/provision/db-endpoint/haproxy.cfg')).toBe(envBefore);
    expect(await viaEndpoint('web-01', WRITE, 'SELECT @@server_id')).toBe(SERVER_ID['db-02']);
    // Every acknowledged id on the new primary, and on the old one once it applied the new primary's position.
    const target = await sql('db-02', 'SELECT @@gtid_binlog_pos');
    expect(await sql('db-01', `SELECT MASTER_GTID_WAIT('${target}', 30)`)).toBe('0');
    for (const h of ['db-01', 'db-02'] as const) {
      const ids = new Set((await sql(h, 'SELECT id FROM app.writes')).split('\n').map(Number));
      expect(rows.filter(([id]) => !ids.has(id)).map(([id]) => id), `acknowledged ids missing on ${h}`).toEqual([]);
    }
    // Reads follow too: the former primary, now a replica, is where the endpoint reads.
    const cut4: string[] = [];
    const read4 = readServerPoll('web-02', cut4);
    expect(await pollUntil(async () => (await read4()) === SERVER_ID['db-01'], 30_000, 500), cut4.join('\n')).toBe(true);
  });

  it('(5) a replica that stops replicating: reads fall back to the primary, and return once it runs again', async () => {
    const cut: string[] = [];
    const readServer = readServerPoll('web-02', cut);
    await sql('db-01', 'STOP SLAVE');
    try {
      expect(await pollUntil(async () => (await readServer()) === SERVER_ID['db-02'], 30_000, 500), `reads on the primary; cut: ${cut.join('; ')}`).toBe(true);
    } finally {
      await sql('db-01', 'START SLAVE');
    }
    expect(await pollUntil(async () => (await readServer()) === SERVER_ID['db-01'], 30_000, 500), `reads back on the replica; cut: ${cut.join('; ')}`).toBe(true);
    console.log(`FIGURE reads cut while the read server changed twice (polled every 0.5 s): ${cut.length}${cut.length ? ` (${cut.join('; ')})` : ''}`);
  });

  it('(6) one agent per database host answers hundreds of checks: same PID, no restart, no failed unit, no unit and no journal line per check', async () => {
    for (const h of ['db-01', 'db-02'] as const) {
      const props = () => sh(h, 'systemctl show -P MainPID provision-db-health.service; systemctl show -P NRestarts provision-db-health.service');
      const before = await props();
      expect(before.split('\n')[0], `${h}: the agent runs`).not.toBe('0');
      const since = await sh(h, 'date +%s');
      // 300 checks from a web server, beside its endpoints' own (several a second); each a valid answer.
      const answered = await sh(
        'web-01',
        `n=0; for i in $(seq 150); do for p in write read; do c=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' http://${ADDRESS(h)}:9200/$p); case $c in 200|503) n=$((n+1)) ;; esac; done; done; echo $n`,
        300_000,
      );
      expect(answered, `${h}: checks answered`).toBe('300');
      expect(await props(), `${h}: the same agent process, never restarted`).toBe(before);
      expect(await sh(h, 'systemctl is-active provision-db-health.service')).toBe('active');
      // No unit per check, no failed unit of the agent, the former socket/template units removed.
      expect(await sh(h, "systemctl list-units --all --no-legend --plain 'provision-db-health*' | awk '{print $1, $3, $4}'")).toBe('provision-db-health.service active running');
      expect(await sh(h, 'ls /etc/systemd/system | grep -c "^provision-db-health" || true')).toBe('1');
      // The journal: nothing for 300 checks (it logs when an answer changes).
      expect(await sh(h, `journalctl -q --no-pager -o cat -u provision-db-health.service --since @${since}`), `${h}: journal lines during the checks`).toBe('');
    }
  });

  it('(7) the agent killed: systemd starts it again, and it answers', async () => {
    const pid = await sh('db-01', 'systemctl show -P MainPID provision-db-health.service');
    // The agent itself (its main process), by pid: `systemctl kill` also signals the unit's other processes and in
    // the lab's containers fails on them (EIO) although the agent is killed.
    await sh('db-01', `kill -KILL ${pid}`);
    const restarted = async () => {
      const now = await sh('db-01', 'systemctl show -P MainPID provision-db-health.service; systemctl is-active provision-db-health.service || true');
      const [p, active] = now.split('\n');
      return p !== '0' && p !== pid && active === 'active';
    };
    expect(await pollUntil(restarted, 30_000, 250), 'a new agent process').toBe(true);
    expect(Number(await sh('db-01', 'systemctl show -P NRestarts provision-db-health.service'))).toBeGreaterThanOrEqual(1);
    expect(await pollUntil(async () => ['200', '503'].includes(await agent('web-02', 'db-01', '/read')), 30_000, 250), 'it answers').toBe(true);
  });

  it('(8) fails closed: the primary\'s server stopped, the endpoints stop sending writes there; started again, the same agent reconnects', async () => {
    // After (4), db-02 is the primary. HAProxy's view on web-01 (its admin socket): the status column of `show stat`.
    const status = async (backend: string, server: string) =>
      sh(
        'web-01',
        `node -e 'const s=require("net").connect(process.argv[1]);let d="";s.on("data",(c)=>(d+=c));s.on("end",()=>{for(const l of d.split("\\n")){const f=l.split(",");if(f[0]===process.argv[2]&&f[1]===process.argv[3])console.log(f[17])}});s.write("show stat\\n")' /run/provision-db-endpoint/admin.sock ${backend} ${server}`,
      );
    expect(await status('db_write', 'db-02')).toMatch(/^UP/);
    const pid = await sh('db-02', 'systemctl show -P MainPID provision-db-health.service');
    const t0 = Date.now();
    await sh('db-02', 'systemctl stop mariadb');
    const stoppedMs = Date.now() - t0;
    expect(await pollUntil(async () => /^DOWN/.test(await status('db_write', 'db-02')), 30_000, 100), 'db-02 out of the write backend').toBe(true);
    console.log(`FIGURE fail closed: db-02's server stopped (systemctl stop: ${stoppedMs} ms), web-01's endpoint marked it out ${Date.now() - t0} ms after the stop began`);
    const body = await sh('web-02', `curl -sS --max-time 3 http://${ADDRESS('db-02')}:9200/write; true`);
    expect(body).toMatch(/^no state: /);
    await sh('db-02', 'systemctl start mariadb');
    // The same process reconnects: its answer is the server's state again (whatever it is after a restart).
    expect(await pollUntil(async () => !/^no state|^state /.test(await sh('web-02', `curl -sS --max-time 3 http://${ADDRESS('db-02')}:9200/read; true`)), 60_000, 250), 'answers from the server again').toBe(true);
    expect(await sh('db-02', 'systemctl show -P MainPID provision-db-health.service')).toBe(pid);
  });
});
