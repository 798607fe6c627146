/**
 * The firewall matrix, measured from outside each host: who can open a TCP connection to what.
 * Sources: the lab's client namespace ("everyone else"), the control machine (the admin), and
 * the hosts themselves. Every "closed" below is a port something listens on (sshd, Nginx, MySQL,
 * the database health agent, an exporter), so only the firewall can close it: without ufw these
 * assertions fail. Hosts are named by their groups, so the same matrix judges the 3-host site (the
 * web servers are the databases) and the split topology (databases on hosts of their own): MySQL
 * only from the web servers and the other database hosts, the health agent from the web servers only.
 */
import net from 'node:net';
import { beforeAll, describe, expect, test } from 'vitest';
import { SHARED_DEFAULTS as P } from '../../src/roles/shared.ts';
import { address, fromClient, group, onHost, only } from './lab-env.ts';

type Reach = 'open' | 'closed';

/** Connects to every target at once with a short timeout; prints {"host:port": "open" | "closed"}. */
const PROBE = [
  'import json, socket, sys, concurrent.futures as cf',
  'def probe(t):',
  '    h, p = t.rsplit(":", 1)',
  '    s = socket.socket(); s.settimeout(2.5)',
  '    try:',
  '        s.connect((h, int(p))); return t, "open"',
  '    except OSError:',
  '        return t, "closed"',
  '    finally:',
  '        s.close()',
  'with cf.ThreadPoolExecutor(32) as ex:',
  '    print(json.dumps(dict(ex.map(probe, sys.argv[1:]))))',
].join('\n');

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function parse(stdout: string, what: string): Record<string, Reach> {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  if (!line.startsWith('{')) throw new Error(`port probe from ${what} printed no result: ${stdout}`);
  return JSON.parse(line) as Record<string, Reach>;
}

async function fromHost(host: string, targets: string[]): Promise<Record<string, Reach>> {
  const r = await onHost(host, `python3 -c ${shq(PROBE)} ${targets.map(shq).join(' ')}`, 30_000);
  if (r.code !== 0) throw new Error(`port probe on ${host} failed: ${r.stderr}`);
  return parse(r.stdout, host);
}

async function fromOutside(targets: string[]): Promise<Record<string, Reach>> {
  const r = await fromClient(['python3', '-c', PROBE, ...targets], 30_000);
  if (r.code !== 0) throw new Error(`port probe in the client namespace failed: ${r.stderr}`);
  return parse(r.stdout, 'the client namespace');
}

/** From the control machine itself (the admin source), with Node's own sockets. */
async function fromController(targets: string[]): Promise<Record<string, Reach>> {
  const one = (t: string) =>
    new Promise<[string, Reach]>((resolve) => {
      const i = t.lastIndexOf(':');
      const s = net.connect({ host: t.slice(0, i), port: Number(t.slice(i + 1)) });
      const done = (r: Reach) => {
        s.destroy();
        resolve([t, r]);
      };
      s.setTimeout(2500, () => done('closed'));
      s.once('connect', () => done('open'));
      s.once('error', () => done('closed'));
    });
  return Object.fromEntries(await Promise.all(targets.map(one)));
}

const at = (host: string, port: number) => `${address(host)}:${port}`;

/** Expectations as "host:port" → reach, probed in one go per source. */
async function check(source: (targets: string[]) => Promise<Record<string, Reach>>, want: Array<[string, number, Reach]>) {
  const targets = want.map(([h, p]) => at(h, p));
  const got = await source(targets);
  const wantMap = Object.fromEntries(want.map(([h, p, r]) => [`${h}:${p}`, r]));
  const gotMap = Object.fromEntries(want.map(([h, p]) => [`${h}:${p}`, got[at(h, p)]]));
  expect(gotMap).toEqual(wantMap);
}

const LB = group('loadbalancers');
const WEB = group('webservers');
const DB = group('databases');
const PRIMARY = only('db_primary');
const MON = only('monitoring');
const ALL = group('all');
const is = (h: string, members: string[]) => members.includes(h);

/** What listens on a host by its groups, except SSH (everywhere) and the load balancer's 80/443. */
function servicePorts(h: string): number[] {
  return [
    P.node_exporter_port,
    ...(is(h, LB) ? [P.haproxy_exporter_port] : []),
    ...(is(h, WEB) ? [P.http_port, P.nginx_exporter_port] : []),
    ...(is(h, DB) ? [P.mysql_port, P.mysqld_exporter_port, P.db_health_port] : []),
    ...(h === MON ? [P.prometheus_port] : []),
  ];
}

describe('firewall matrix', () => {
  beforeAll(() => {
    for (const h of ALL) address(h); // a lab without these hosts fails here, clearly
  });

  test('from the internet: the load balancer answers 80 and 443, nothing else anywhere (not even SSH)', async () => {
    await check(fromOutside, [
      ...LB.flatMap((h): Array<[string, number, Reach]> => [
        [h, P.http_port, 'open'],
        [h, P.https_port, 'open'],
      ]),
      ...ALL.flatMap((h) => [P.ssh_port, ...servicePorts(h)].map((port): [string, number, Reach] => [h, port, 'closed'])),
    ]);
  });

  test('from the control machine: SSH everywhere and Prometheus, but no service or exporter port', async () => {
    await check(fromController, [
      ...ALL.map((h): [string, number, Reach] => [h, P.ssh_port, 'open']),
      [MON, P.prometheus_port, 'open'],
      [WEB[0]!, P.http_port, 'closed'],
      [PRIMARY, P.mysql_port, 'closed'],
      [PRIMARY, P.db_health_port, 'closed'],
      [WEB[0]!, P.node_exporter_port, 'closed'],
      [LB[0]!, P.haproxy_exporter_port, 'closed'],
    ]);
  });

  test('from the load balancer: the web servers port 80, and nothing else of theirs or the databases\'', async () => {
    await check((t) => fromHost(LB[0]!, t), [
      ...WEB.map((h): [string, number, Reach] => [h, P.http_port, 'open']),
      ...DB.flatMap((h): Array<[string, number, Reach]> => [
        [h, P.mysql_port, 'closed'],
        [h, P.db_health_port, 'closed'],
      ]),
      [WEB[0]!, P.node_exporter_port, 'closed'],
      [WEB[0]!, P.ssh_port, 'closed'],
      [MON, P.prometheus_port, 'closed'],
    ]);
  });

  test('between the database hosts: MySQL both ways; nothing else of each other', async () => {
    for (const from of DB) {
      await check((t) => fromHost(from, t), DB.filter((h) => h !== from).flatMap((h): Array<[string, number, Reach]> => [
        [h, P.mysql_port, 'open'],
        [h, P.node_exporter_port, 'closed'],
        [h, P.mysqld_exporter_port, 'closed'],
        [h, P.ssh_port, 'closed'],
      ]));
    }
  });

  test('from each web server: MySQL and the health agent of every database host; nothing else of theirs', async () => {
    for (const from of WEB) {
      const dbs = DB.filter((h) => h !== from);
      expect(dbs.length, `${from} has a database host to reach`).toBeGreaterThan(0);
      await check((t) => fromHost(from, t), dbs.flatMap((h): Array<[string, number, Reach]> => [
        [h, P.mysql_port, 'open'],
        [h, P.db_health_port, 'open'],
        [h, P.mysqld_exporter_port, 'closed'],
        [h, P.node_exporter_port, 'closed'],
        [h, P.ssh_port, 'closed'],
      ]));
    }
  });

  test('from monitoring: every exporter, but no web, database, health-agent or SSH port', async () => {
    await check((t) => fromHost(MON, t), [
      ...ALL.filter((h) => h !== MON).map((h): [string, number, Reach] => [h, P.node_exporter_port, 'open']),
      ...LB.map((h): [string, number, Reach] => [h, P.haproxy_exporter_port, 'open']),
      ...WEB.map((h): [string, number, Reach] => [h, P.nginx_exporter_port, 'open']),
      ...DB.map((h): [string, number, Reach] => [h, P.mysqld_exporter_port, 'open']),
      [WEB[0]!, P.http_port, 'closed'],
      [PRIMARY, P.mysql_port, 'closed'],
      [PRIMARY, P.db_health_port, 'closed'],
      [LB[0]!, P.ssh_port, 'closed'],
    ]);
  });

  /**
   * The rules a host must hold, written out from the matrix above (not from src/roles/firewall): ssh from
   * the admin, http from the load balancer (web), mysql from the other database hosts then the web servers
   * and the health agent from the web servers (database), then the exporters from monitoring; all from IPv4
   * sources, so no (v6) twin.
   */
  function expectedRules(h: string): string[] {
    const admin = `${address(LB[0]!).split('.').slice(0, 3).join('.')}.1`;
    const mon = address(MON);
    const others = (members: string[]) => members.filter((m) => m !== h);
    const mysqlFrom = [...new Set([...others(DB), ...others(WEB)])];
    return [
      `${P.ssh_port}/tcp ALLOW IN ${admin} # ssh from admin`,
      ...(is(h, WEB) ? LB.map((l) => `${P.http_port}/tcp ALLOW IN ${address(l)} # http from load balancer`) : []),
      ...(is(h, DB) ? mysqlFrom.map((m) => `${P.mysql_port}/tcp ALLOW IN ${address(m)} # mysql from database/app host`) : []),
      ...(is(h, DB) ? others(WEB).map((w) => `${P.db_health_port}/tcp ALLOW IN ${address(w)} # db health agent from app host`) : []),
      `${P.node_exporter_port}/tcp ALLOW IN ${mon} # node exporter from monitoring`,
      ...(is(h, WEB) ? [`${P.nginx_exporter_port}/tcp ALLOW IN ${mon} # nginx exporter from monitoring`] : []),
      ...(is(h, DB) ? [`${P.mysqld_exporter_port}/tcp ALLOW IN ${mon} # mysqld exporter from monitoring`] : []),
    ];
  }

  test.each([...new Set([WEB[0]!, PRIMARY])])('ufw itself on %s: enabled, deny incoming, exactly the computed rules in their order (nothing left over)', async (h) => {
    const r = await onHost(h, 'ufw status verbose; ufw status numbered');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Status: active/m);
    expect(r.stdout).toMatch(/^Default: deny \(incoming\), allow \(outgoing\)/m);
    expect(r.stdout).toMatch(/^Logging: on \(low\)/m);
    // Every numbered rule, whatever its action (ALLOW, DENY, LIMIT, REJECT; IN, OUT, FWD) and family:
    // "to action from # comment", in ufw's order (the first match decides).
    const rules = r.stdout
      .split('\n')
      .filter((l) => /^\[\s*\d+\]/.test(l))
      .map((l) => l.replace(/^\[\s*\d+\]\s*/, '').replace(/\s+/g, ' ').trim());
    expect(rules.every((l) => /\b(ALLOW|DENY|LIMIT|REJECT)\b/.test(l)), rules.join('\n')).toBe(true);
    expect(rules).toEqual(expectedRules(h));
  });
});
