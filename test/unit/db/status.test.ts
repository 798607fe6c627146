/**
 * `provision db status` from the servers' own answers (recorded MariaDB 10.11 client output): the
 * primary is the one writable server that does not replicate; two writers or none is a problem.
 */
import { describe, expect, test } from 'vitest';
import { parseServerState, type ServerState } from '../../../src/db/server.js';
import { renderStatus, summarize } from '../../../src/db/status.js';

const VARS_HEADER = 'read_only\tsuper_read_only\tserver_id\texecuted\treplica_applied';
const SLAVE_HEADER = [
  'Slave_IO_State', 'Master_Host', 'Master_User', 'Master_Port', 'Connect_Retry', 'Slave_IO_Running', 'Slave_SQL_Running',
  'Last_IO_Errno', 'Last_IO_Error', 'Last_SQL_Errno', 'Last_SQL_Error', 'Seconds_Behind_Master', 'Using_Gtid', 'Gtid_IO_Pos',
].join('\t');
const slaveRow = (host: string, io = 'Yes', sql = 'Yes', lag = '0', received = '0-11-42') =>
  ['Waiting for master to send event', host, 'replicator', '3306', '10', io, sql, '0', '', '0', '', lag, 'Slave_Pos', received].join('\t');

function server(name: string, address: string, out: string): ServerState {
  return parseServerState({ name, address, flavor: 'mariadb' }, out);
}
const primaryOut = (readOnly = '0') => `${VARS_HEADER}\n${readOnly}\t0\t11\t0-11-42\t\n`;
const replicaOut = (readOnly = '1', io = 'Yes', lag = '0') => `${VARS_HEADER}\n${readOnly}\t0\t12\t0-11-40\t0-11-40\n${SLAVE_HEADER}\n${slaveRow('10.88.0.11', io, 'Yes', lag)}\n`;

describe('db status', () => {
  test('a primary and a running replica: names, source, threads, lag, GTIDs received and executed', () => {
    const s = summarize([server('web-01', '10.88.0.11', primaryOut()), server('web-02', '10.88.0.12', replicaOut('1', 'Yes', '3'))]);
    expect(s).toEqual({
      primary: 'web-01',
      primaryExecuted: '0-11-42',
      replicas: {
        'web-02': {
          source: '10.88.0.11:3306',
          sourceHost: 'web-01',
          io: 'Yes',
          sql: 'Yes',
          lagSeconds: 3,
          received: '0-11-42',
          executed: '0-11-40',
          readOnly: true,
          lastIoError: null,
          lastSqlError: null,
        },
      },
      unreachable: {},
      problems: [],
      twoWriters: false,
    });
    expect(renderStatus(s)).toBe(
      'primary: web-01 (writable, not replicating; executed 0-11-42)\n' +
        'replica web-02: from web-01 (10.88.0.11:3306), IO Yes, SQL Yes, lag 3 s, received 0-11-42, executed 0-11-40',
    );
  });

  test('two writable servers: no primary, said so', () => {
    const s = summarize([server('web-01', '10.88.0.11', primaryOut()), server('web-02', '10.88.0.12', replicaOut('0'))]);
    expect(s.primary).toBeNull();
    expect(s.problems).toContain('2 writable servers: web-01, web-02 (exactly one must be)');
    expect(renderStatus(s)).toMatch(/^primary: NONE$/m);
  });

  test('no writable server: no primary, said so', () => {
    const s = summarize([server('web-01', '10.88.0.11', primaryOut('1')), server('web-02', '10.88.0.12', replicaOut())]);
    expect(s.primary).toBeNull();
    expect(s.problems).toEqual(['no writable server: no primary (every server is read-only)', 'web-01 is not the primary and does not replicate']);
  });

  test('a stopped IO thread and a replica of another source are problems; the primary is still named', () => {
    const s = summarize([server('web-01', '10.88.0.11', primaryOut()), server('web-02', '10.88.0.12', replicaOut('1', 'No', 'NULL'))]);
    expect(s.primary).toBe('web-01');
    expect(s.replicas['web-02']!.lagSeconds).toBeNull();
    expect(s.problems).toEqual(['web-02: replication not running (IO No, SQL Yes)']);
    const other = summarize([server('web-01', '10.88.0.11', primaryOut()), server('web-02', '10.88.0.12', replicaOut().replace('10.88.0.11', '10.88.0.99'))]);
    expect(other.problems).toEqual(['web-02 replicates from 10.88.0.99, not from the primary web-01 (10.88.0.11)']);
  });

  test('an unreadable answer is an error, never "read-only" or "no replica"', () => {
    expect(() => server('web-01', '10.88.0.11', 'ERROR 2002 (HY000): Can\'t connect to local server\n')).toThrow(/cannot read the server variables/);
  });
});
