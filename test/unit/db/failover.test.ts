/**
 * `provision db failover`'s decisions from what the servers answered (recorded MariaDB 10.11 states),
 * the GTID comparisons behind "the most advanced replica" and "what may be lost", and the fence's
 * shell run by a real sh against a recording iptables.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { chooseTarget, FailoverRefused, planFailover, type Candidate, type HostView } from '../../../src/db/failover.js';
import { fenceRule, fenceScript, unfenceScript } from '../../../src/db/fence.js';
import { gtidAtLeast, gtidsBeyond, parseGtids } from '../../../src/db/gtid.js';
import type { DbServer, ServerState } from '../../../src/db/server.js';

const fakeServer = {} as DbServer;

function replicaState(name: string, address: string, source: string, applied = '0-11-40', readOnly = true): ServerState {
  return {
    name,
    address,
    flavor: 'mariadb',
    readOnly,
    superReadOnly: false,
    serverId: 12,
    executed: applied,
    replica: {
      configured: true, host: source, port: 3306, user: 'replicator', io: 'Connecting', sql: 'Yes', ioState: '', ioErrno: 2003, ioError: "Can't connect",
      sqlErrno: 0, sqlError: '', lag: null, gtid: true, gtidPos: applied, sslAllowed: 'Yes', sslCa: '', sslVerify: 'Yes', received: applied, applied,
    },
  };
}
const primaryState = (name: string, address: string, readOnly = false): ServerState => ({ name, address, flavor: 'mariadb', readOnly, superReadOnly: false, serverId: 11, executed: '0-11-42' });

const down = (name: string, address: string): HostView => ({ name, address, sshError: 'connect timed out' });
const up = (state: ServerState): HostView => ({ name: state.name, address: state.address, server: fakeServer, state });
const sqlDown = (name: string, address: string): HostView => ({ name, address, server: fakeServer, sqlError: "Can't connect to local server through socket" });

const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FailoverRefused);
    return (err as Error).message;
  }
  throw new Error('not refused');
};

describe('GTID positions (MariaDB)', () => {
  test('parsed, compared per domain, the difference counted', () => {
    expect(parseGtids(' 0-11-42,1-12-7\n')).toEqual([{ domain: 0, server: 11, seq: 42 }, { domain: 1, server: 12, seq: 7 }]);
    expect(parseGtids('')).toEqual([]);
    expect(() => parseGtids('3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5')).toThrow(/not a MariaDB GTID position/);
    expect(gtidAtLeast('0-11-42', '0-11-40')).toBe(true);
    expect(gtidAtLeast('0-11-40', '0-11-42')).toBe(false);
    expect(gtidAtLeast('0-12-45', '0-11-42')).toBe(true); // a later server of the same domain
    expect(gtidAtLeast('0-11-42', '0-11-42,1-12-3')).toBe(false); // a domain it does not have
    expect(gtidAtLeast('0-11-1', '')).toBe(true);
    expect(gtidsBeyond('0-11-47', '0-11-42')).toEqual({ count: 5, ranges: ['0-11-43..0-11-47 (5)'] });
    expect(gtidsBeyond('0-11-43', '0-11-42')).toEqual({ count: 1, ranges: ['0-11-43 (1)'] });
    expect(gtidsBeyond('0-11-42', '0-12-50')).toEqual({ count: 0, ranges: [] });
    expect(gtidsBeyond('0-11-3', '')).toEqual({ count: 3, ranges: ['0-11-1..0-11-3 (3)'] });
  });
});

describe('db failover: what to do, from what answered', () => {
  const W1 = '10.112.0.11';
  test('the primary unreachable over SSH: refused without --force, one line naming --force', () => {
    const hosts = [down('web-01', W1), up(replicaState('web-02', '10.112.0.12', W1))];
    const msg = refusal(() => planFailover(hosts, { force: false }));
    expect(msg).toBe(
      'web-01 is unreachable over SSH (connect timed out), so it cannot be fenced: it may still take writes that no replica will see. Nothing was changed. --force promotes a replica anyway (and reports what may be lost)',
    );
    expect(msg).not.toContain('\n');
    const plan = planFailover(hosts, { force: true });
    expect(plan.failed.name).toBe('web-01');
    expect(plan.candidates.map((c) => c.name)).toEqual(['web-02']);
  });

  test('the primary answers SSH, not SQL: a failover (it will be fenced), no --force needed', () => {
    const plan = planFailover([sqlDown('web-01', W1), up(replicaState('web-02', '10.112.0.12', W1)), up(replicaState('web-03', '10.112.0.13', W1))], { force: false });
    expect([plan.failed.name, plan.candidates.map((c) => c.name)]).toEqual(['web-01', ['web-02', 'web-03']]);
  });

  test('a primary that answers and is writable: refused, use switchover (even with --force)', () => {
    const msg = refusal(() => planFailover([up(primaryState('web-01', W1)), up(replicaState('web-02', '10.112.0.12', W1))], { force: true }));
    expect(msg).toBe('web-01 answers and is writable: the primary is alive, this is not a failover. To move the writer, use provision db switchover --to HOST');
  });

  test('a primary that answers read-only is failed over (fenced, its position read)', () => {
    const plan = planFailover([up(primaryState('web-01', W1, true)), up(replicaState('web-02', '10.112.0.12', W1))], { force: false });
    expect(plan.failed.name).toBe('web-01');
  });

  test('replicas of different sources, none replicating, --to the failed or an unknown host: refused', () => {
    expect(refusal(() => planFailover([down('web-01', W1), up(replicaState('web-02', '10.112.0.12', W1)), up(replicaState('web-03', '10.112.0.13', '10.112.0.12'))], { force: true }))).toMatch(
      /different sources \(10\.112\.0\.11, 10\.112\.0\.12\)/,
    );
    expect(refusal(() => planFailover([down('web-01', W1), up(primaryState('web-02', '10.112.0.12', true))], { force: true }))).toMatch(/no server that answers replicates/);
    expect(refusal(() => planFailover([down('web-01', W1), up(replicaState('web-02', '10.112.0.12', W1))], { force: true, to: 'web-01' }))).toBe('--to web-01 is the failed primary');
    expect(refusal(() => planFailover([down('web-01', W1), up(replicaState('web-02', '10.112.0.12', W1)), sqlDown('web-03', '10.112.0.13')], { force: true, to: 'web-03' }))).toMatch(
      /--to web-03 is not a replica of web-01 that answers SQL \(candidates: web-02\)/,
    );
    expect(refusal(() => planFailover([down('web-01', W1), down('web-02', '10.112.0.12')], { force: true }))).toMatch(/no server that answers replicates/);
  });

  test('the most advanced candidate is promoted; --to only when it is as advanced as every other', () => {
    const c = (name: string, executed: string): Candidate => ({ name, received: executed, executed, applied: true });
    const cands = [c('web-02', '0-11-40'), c('web-03', '0-11-42'), c('web-04', '0-11-42')];
    expect(chooseTarget(cands, gtidAtLeast).name).toBe('web-03');
    expect(chooseTarget(cands, gtidAtLeast, 'web-04').name).toBe('web-04');
    expect(refusal(() => chooseTarget(cands, gtidAtLeast, 'web-02'))).toBe('--to web-02 is behind web-03 (executed 0-11-42), web-04 (executed 0-11-42): it executed 0-11-40; promoting it would lose what they have');
    expect(refusal(() => chooseTarget([c('web-02', '0-11-40,1-12-1'), c('web-03', '0-11-42')], gtidAtLeast))).toMatch(/the replicas diverged/);
  });
});

describe('the fence', () => {
  /** A recording iptables on PATH: -C fails until -I added the rule, -D succeeds while it is there. */
  function sandbox(withIptables = true) {
    const dir = mkdtempSync(path.join(tmpdir(), 'fence-'));
    const state = path.join(dir, 'rules');
    writeFileSync(state, '');
    if (withIptables) {
      writeFileSync(
        path.join(dir, 'iptables'),
        `#!/bin/sh\nop=$1; shift\necho "$op $*" >> ${dir}/calls\ncase $op in\n-C) grep -qxF -- "$*" ${state} ;;\n-I) echo "$*" >> ${state} ;;\n-D) grep -qxF -- "$*" ${state} || exit 1; grep -vxF -- "$*" ${state} > ${state}.new; mv ${state}.new ${state} ;;\nesac\n`,
      );
      chmodSync(path.join(dir, 'iptables'), 0o755);
    }
    const run = (script: string) => {
      // STATE_DIR is absolute in the script: run it with / replaced by the sandbox for the record.
      const s = script.replaceAll('/var/lib/provision', path.join(dir, 'state'));
      try {
        return { code: 0, out: execFileSync('/bin/sh', ['-c', s], { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: 'utf8' }) };
      } catch (err) {
        return { code: (err as { status: number }).status, out: String((err as { stderr: string }).stderr) };
      }
    };
    return { dir, state, run, rules: () => readFileSync(state, 'utf8') };
  }
  const record = { port: 3306, rule: fenceRule(3306), since: '2026-11-28T03:00:00.000Z', by: 'provision db failover' };

  test('closes the port once (a second fence keeps one rule), records it; the lift removes rule and record', () => {
    const sb = sandbox();
    expect(sb.run(fenceScript(3306, record)).code).toBe(0);
    expect(sb.run(fenceScript(3306, record)).code).toBe(0);
    expect(sb.rules()).toBe('INPUT -p tcp --dport 3306 -m comment --comment provision-db-fence -j REJECT --reject-with tcp-reset\n');
    expect(JSON.parse(readFileSync(path.join(sb.dir, 'state', 'db-fence.json'), 'utf8'))).toEqual(record);
    expect(sb.run(unfenceScript(3306))).toEqual({ code: 0, out: 'lifted\n' });
    expect(sb.rules()).toBe('');
    expect(sb.run(unfenceScript(3306))).toEqual({ code: 0, out: '' });
  });

  test('no iptables: exit 3 and why (the host is reported as not fenceable)', () => {
    const sb = sandbox(false);
    const r = sb.run(fenceScript(3306, record));
    expect(r.code).toBe(3);
    expect(r.out).toContain('iptables is not installed');
  });
});
