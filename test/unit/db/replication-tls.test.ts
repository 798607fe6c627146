/**
 * What `provision db switchover | failover | rejoin` send to the servers when they point a replica at a
 * new source or make its account: the same as the mysql role (TLS required of the account, the
 * source verified over TLS), so that the next converge finds nothing to change. The SQL is recorded
 * from a DbServer over a session that answers like the MariaDB client.
 */
import { describe, expect, test } from 'vitest';
import { DbServer } from '../../../src/db/server.js';
import { ensureReplicationAccount, follow } from '../../../src/db/switchover.js';
import type { HostSession } from '../../../src/executor/session.js';
import { DB_CA_FILE } from '../../../src/modules/mysql/tls.js';
import { Secret } from '../../../src/util/secrets.js';

const VARS_HEADER = 'read_only\tsuper_read_only\tserver_id\texecuted\treplica_applied';
const SLAVE_HEADER = ['Master_Host', 'Master_User', 'Master_Port', 'Slave_IO_Running', 'Slave_SQL_Running', 'Last_IO_Errno', 'Last_SQL_Errno', 'Using_Gtid', 'Gtid_IO_Pos'].join('\t');

/** A server whose client records every SQL script and answers: a running replica of 10.9.0.12, every GTID wait reached. */
function recordingServer(name: string, address: string): { server: DbServer; scripts: string[] } {
  const scripts: string[] = [];
  const session = {
    exec: async (_cmd: string, opts?: { stdin?: string }) => {
      const sql = opts?.stdin ?? '';
      scripts.push(sql);
      let stdout = '';
      if (sql.includes('SHOW SLAVE STATUS')) stdout = `${VARS_HEADER}\n1\t0\t11\t0-12-5\t0-12-5\n${SLAVE_HEADER}\n10.9.0.12\treplicator\t3306\tYes\tYes\t0\t0\tSlave_Pos\t0-12-5\n`;
      else if (sql.includes('MASTER_GTID_WAIT')) stdout = '0\n';
      else if (sql.includes('gtid_binlog_pos')) stdout = '0-12-5\n';
      return { code: 0, stdout, stderr: '' };
    },
  } as unknown as HostSession;
  return { server: new DbServer(name, address, 'mariadb', session), scripts };
}

const login = { user: 'replicator', password: new Secret('mysql_replication_password', 'Repl-Passw0rd-2024'), port: 3306 };

describe('db commands: replication as the mysql role sets it up (TLS)', () => {
  test('the replication account a switchover or rejoin makes requires TLS, also when it was already there', async () => {
    const { server, scripts } = recordingServer('web-02', '10.9.0.12');
    await ensureReplicationAccount(server, '10.9.0.11', login);
    const sql = scripts.join('\n');
    expect(sql).toMatch(/^CREATE USER IF NOT EXISTS 'replicator'@'10\.9\.0\.11' IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}' REQUIRE SSL;$/m);
    expect(sql).toMatch(/^ALTER USER 'replicator'@'10\.9\.0\.11' REQUIRE SSL;$/m);
    expect(sql).toContain("GRANT REPLICATION SLAVE ON *.* TO 'replicator'@'10.9.0.11'");
    expect(sql).not.toContain('Repl-Passw0rd-2024');
  });

  test('a replica pointed at a new source (failover, rejoin, switchover) verifies it over TLS with the database CA', async () => {
    const replica = recordingServer('web-01', '10.9.0.11');
    const source = recordingServer('web-02', '10.9.0.12');
    await follow(replica.server, source.server, { login: () => login, catchUpTimeoutSeconds: 5 }, { formerPrimary: false });
    const change = replica.scripts.find((s) => s.includes('CHANGE MASTER TO'));
    expect(change).toBeDefined();
    expect(change).toContain("MASTER_HOST = '10.9.0.12'");
    expect(change).toContain(`MASTER_SSL = 1, MASTER_SSL_CA = '${DB_CA_FILE}', MASTER_SSL_VERIFY_SERVER_CERT = 1`);
  });
});
