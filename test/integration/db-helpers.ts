/**
 * What the database lab tests share (db-switchover, db-failover): a pair (or more) of lab hosts with
 * the mysql role as the site runs it, the inventory with one of them in db_primary, `provision db …`,
 * SQL and shell on a host, and the client that writes numbered rows in a bounded loop.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { hostExec, labPaths } from '../../src/lab/index.ts';
import { pkiDirFor } from '../../src/pki/index.ts';
import { provision, type CliResult } from '../e2e/lab-env.ts';
import { failures, pollUntil } from './faults-helpers.ts';

export const APP_PASSWORD = 'App-Passw0rd-20241';
export const env = {
  PROVISION_SECRET_MYSQL_REPLICATION_PASSWORD: 'Repl-Passw0rd-2024',
  PROVISION_SECRET_MYSQL_APP_PASSWORD: APP_PASSWORD,
  PROVISION_SECRET_MYSQL_EXPORTER_PASSWORD: 'Exp-Passw0rd-20241',
};
export const RUN_BOUND_MS = 300_000;

export const PLAYBOOK = `- name: MySQL primary
  hosts: db_primary
  roles: [mysql]
- name: MySQL replica
  hosts: db_replica
  roles: [mysql]
`;

export interface Status {
  primary: string | null;
  replicas: Record<string, { source: string | null; sourceHost: string | null; io: string; sql: string; received: string; executed: string; lagSeconds: number | null }>;
  problems: string[];
}

export interface Ack {
  id: number;
  at: number;
  via: string;
}

/**
 * The client: ids 1, 2, … each inserted through the app's user over TCP until acknowledged.
 * Its rule: an error (read-only, refused, killed) → the next attempt goes to the other server, 50 ms later.
 * A duplicate key on a retry means an earlier attempt committed without the answer arriving: acknowledged.
 * Bounded: at most 4000 ids and 150 s, stops when the stop file appears.
 */
export const WRITER = `set -u
cnf=/root/writer.cnf; out=/root/writer; cur=$1; other=$2
rm -f $out.acked $out.failed $out.stop
i=1; end=$(( $(date +%s) + 150 ))
while [ $i -le 4000 ] && [ ! -e $out.stop ] && [ $(date +%s) -lt $end ]; do
  if err=$(mysql --defaults-extra-file=$cnf -h $cur --connect-timeout=2 -e "INSERT INTO app.writes (id, via) VALUES ($i, '$cur')" 2>&1) || case "$err" in *"ERROR 1062"*) true ;; *) false ;; esac; then
    echo "$i $(date +%s%3N) $cur" >> $out.acked; i=$((i+1)); sleep 0.02
  else
    echo "$i $(date +%s%3N) $cur $err" | tr '\\n' ' ' >> $out.failed; echo >> $out.failed
    t=$cur; cur=$other; other=$t; sleep 0.05
  fi
done
echo "stopped at id $i"
`;

/** The longest gap between two consecutive acknowledgements (ms). */
export function longestGap(acked: Ack[]): number {
  let gap = 0;
  for (let i = 1; i < acked.length; i++) gap = Math.max(gap, acked[i]!.at - acked[i - 1]!.at);
  return gap;
}

/**
 * The name every database certificate of a test's site carries (db_tls_name). The tests write inventories under
 * several names (one per primary, one per case); without a pinned name each would be `db.<inventory>.internal`
 * and every converge under another name would issue every database certificate again.
 */
export const LAB_DB_TLS_NAME = 'db.lab.internal';

/** One lab instance's database hosts: its inventories, commands and SQL. */
export function dbLab(o: { name: string; dir: string; address: Record<string, string> }) {
  const hosts = Object.keys(o.address);

  /** The hosts with `primary` in db_primary and the others in db_replica. */
  function inventory(primary: string, extraVars = ''): string {
    const p = labPaths(o.name);
    const file = path.join(o.dir, `inv-${primary}.yml`);
    const line = (h: string) => `  ${h}: { address: ${o.address[h]}, groups: [webservers, ${h === primary ? 'db_primary' : 'db_replica'}] }\n`;
    writeFileSync(
      file,
      `defaults:
  user: root
  identity_file: ${p.sshKey}
  known_hosts: ${p.knownHosts}
  connect_timeout: 5
hosts:
${hosts.map(line).join('')}vars:
  mysql_replication_password: !secret mysql_replication_password
  mysql_app_password: !secret mysql_app_password
  mysql_exporter_password: !secret mysql_exporter_password
  mysql_replication_verify_timeout: 30
  db_tls_name: ${LAB_DB_TLS_NAME}
${extraVars}`,
    );
    return file;
  }

  function converge(inv: string): Promise<CliResult> {
    shareCa(o.dir, inv);
    const pb = path.join(o.dir, 'site.yml');
    writeFileSync(pb, PLAYBOOK);
    return provision(['-i', inv, '-p', pb, '--json'], { env, timeoutMs: RUN_BOUND_MS });
  }
  const db = (...args: string[]) => provision(['db', ...args], { env, timeoutMs: RUN_BOUND_MS });

  async function sh(host: string, script: string, timeoutMs = 60_000): Promise<string> {
    const r = await hostExec(host, ['sh', '-c', script], o.name, { timeoutMs });
    expect(r.code, `${host}: ${script}\n${r.stdout}${r.stderr}`).toBe(0);
    return r.stdout.trim();
  }
  const sql = (host: string, query: string) => sh(host, `mysql --batch --skip-column-names <<'EOF'\n${query}\nEOF`);

  async function status(inv: string): Promise<Status> {
    const r = await db('status', '-i', inv, '--json');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Status;
  }
  function expectPrimary(s: Status, primary: string, replica: string): void {
    expect(s.primary).toBe(primary);
    expect(s.problems).toEqual([]);
    const r = s.replicas[replica]!;
    expect([r.sourceHost, r.source, r.io, r.sql]).toEqual([primary, `${o.address[primary]}:3306`, 'Yes', 'Yes']);
    expect(r.executed).toMatch(/^0-\d+-\d+/);
  }

  /** Starts the writer on `on`, first toward `first` then `second`; resolves when it ended. */
  function startWriter(on: string, first: string, second: string) {
    return hostExec(on, ['sh', '-c', WRITER, 'writer', o.address[first]!, o.address[second]!], o.name, { timeoutMs: 200_000 });
  }
  /** Acknowledged ids by server (address). */
  const ackedVia = async (on: string, via: string) => Number(await sh(on, `grep -c ' ${via}$' /root/writer.acked 2>/dev/null || true`)) || 0;
  /** Waits (bounded) until the writer has `n` acknowledgements from `via`'s server. */
  async function waitForAcks(on: string, via: string, n: number, why = ''): Promise<void> {
    expect(await pollUntil(async () => (await ackedVia(on, o.address[via]!)) >= n, 60_000, 250), `the writer writes to ${via} ${why}`).toBeTruthy();
  }
  /** Stops the writer and reads what it acknowledged and how many attempts failed. */
  async function stopWriter(on: string, writing: ReturnType<typeof startWriter>): Promise<{ acked: Ack[]; failedAttempts: number }> {
    await sh(on, 'touch /root/writer.stop');
    const w = await writing;
    expect(w.code, w.stderr).toBe(0);
    const acked = (await sh(on, 'cat /root/writer.acked'))
      .split('\n')
      .map((l) => l.split(' '))
      .map(([id, at, via]) => ({ id: Number(id), at: Number(at), via: via! }));
    const failedAttempts = Number(await sh(on, 'wc -l < /root/writer.failed 2>/dev/null || echo 0'));
    return { acked, failedAttempts };
  }
  /** The writer's login, in a 0600 option file (never in argv). */
  // The writer's login, in a 0600 option file (never in argv); over TLS, verifying the server (the servers require it).
  const writerLogin = (on: string) =>
    sh(on, `umask 077; printf '[client]\\nuser=app\\npassword=%s\\nssl-ca=/etc/provision/tls/db-ca.pem\\nssl-verify-server-cert\\n' '${APP_PASSWORD}' > /root/writer.cnf`);

  return { inventory, converge, db, sh, sql, status, expectPrimary, startWriter, waitForAcks, stopWriter, writerLogin };
}

/**
 * The inventories a test writes in `dir` are one site with one CA. The CA folder is beside the
 * inventory file (inv-web-01.pki), so the first one made is copied (modes kept) beside an inventory
 * that has none yet: a site whose inventory is edited keeps its CA; without this, each inventory file
 * would get a CA of its own and every certificate and CA bundle would be replaced by its converge.
 */
export function shareCa(dir: string, inv: string): void {
  const mine = pkiDirFor({ file: inv });
  const first = readdirSync(dir).find((f) => f.endsWith('.pki'));
  if (!existsSync(mine) && first) execFileSync('cp', ['-a', path.join(dir, first), mine]);
}

export function expectSuccess(r: CliResult): void {
  expect(failures(r), r.stdout + r.stderr).toEqual([]);
  expect([0, 2], r.stdout + r.stderr).toContain(r.code);
}
