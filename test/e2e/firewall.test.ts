/**
 * The firewall matrix, measured from outside each host: who can open a TCP connection to what.
 * Sources: the lab's client namespace ("everyone else"), the control machine (the admin), and
 * the hosts themselves. Every "closed" below is a port something listens on (sshd, Nginx, MySQL,
 * an exporter), so only the firewall can close it: without ufw these assertions fail.
 */
import net from 'node:net';
import { beforeAll, describe, expect, test } from 'vitest';
import { SHARED_DEFAULTS as P } from '../../src/roles/shared.ts';
import { address, fromClient, onHost } from './lab-env.ts';

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

const WEB = ['web-01', 'web-02'];
const ALL = ['lb-01', ...WEB, 'mon-01'];

describe('firewall matrix', () => {
  beforeAll(() => {
    for (const h of ALL) address(h); // a lab without these hosts fails here, clearly
  });

  test('from the internet: the load balancer answers 80 and 443, nothing else anywhere (not even SSH)', async () => {
    await check(fromOutside, [
      ['lb-01', P.http_port, 'open'],
      ['lb-01', P.https_port, 'open'],
      ['lb-01', P.ssh_port, 'closed'],
      ['lb-01', P.node_exporter_port, 'closed'],
      ['lb-01', P.haproxy_exporter_port, 'closed'],
      ...WEB.flatMap((h): Array<[string, number, Reach]> => [
        [h, P.ssh_port, 'closed'],
        [h, P.http_port, 'closed'],
        [h, P.mysql_port, 'closed'],
        [h, P.node_exporter_port, 'closed'],
        [h, P.nginx_exporter_port, 'closed'],
        [h, P.mysqld_exporter_port, 'closed'],
      ]),
      ['mon-01', P.ssh_port, 'closed'],
      ['mon-01', P.prometheus_port, 'closed'],
      ['mon-01', P.node_exporter_port, 'closed'],
    ]);
  });

  test('from the control machine: SSH everywhere and Prometheus, but no service or exporter port', async () => {
    await check(fromController, [
      ...ALL.map((h): [string, number, Reach] => [h, P.ssh_port, 'open']),
      ['mon-01', P.prometheus_port, 'open'],
      ['web-01', P.http_port, 'closed'],
      ['web-01', P.mysql_port, 'closed'],
      ['web-01', P.node_exporter_port, 'closed'],
      ['lb-01', P.haproxy_exporter_port, 'closed'],
    ]);
  });

  test('from the load balancer: the web servers port 80, and nothing else of theirs', async () => {
    await check((t) => fromHost('lb-01', t), [
      ...WEB.map((h): [string, number, Reach] => [h, P.http_port, 'open']),
      ['web-01', P.mysql_port, 'closed'],
      ['web-01', P.node_exporter_port, 'closed'],
      ['web-01', P.ssh_port, 'closed'],
      ['mon-01', P.prometheus_port, 'closed'],
    ]);
  });

  test('between the database hosts: MySQL both ways; nothing else of each other', async () => {
    await check((t) => fromHost('web-02', t), [
      ['web-01', P.mysql_port, 'open'],
      ['web-01', P.node_exporter_port, 'closed'],
      ['web-01', P.ssh_port, 'closed'],
    ]);
    await check((t) => fromHost('web-01', t), [
      ['web-02', P.mysql_port, 'open'],
      ['web-02', P.mysqld_exporter_port, 'closed'],
    ]);
  });

  test('from monitoring: every exporter, but no web, database or SSH port', async () => {
    await check((t) => fromHost('mon-01', t), [
      ...ALL.filter((h) => h !== 'mon-01').map((h): [string, number, Reach] => [h, P.node_exporter_port, 'open']),
      ['lb-01', P.haproxy_exporter_port, 'open'],
      ...WEB.flatMap((h): Array<[string, number, Reach]> => [
        [h, P.nginx_exporter_port, 'open'],
        [h, P.mysqld_exporter_port, 'open'],
      ]),
      ['web-01', P.http_port, 'closed'],
      ['web-01', P.mysql_port, 'closed'],
      ['lb-01', P.ssh_port, 'closed'],
    ]);
  });

  test('ufw itself: enabled, deny incoming, exactly the computed rules in their order (nothing left over)', async () => {
    const r = await onHost('web-01', 'ufw status verbose; ufw status numbered');
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
    // web-01 (web server, database primary): ssh from the admin, http from the LB, mysql and the database
    // health agent from web-02,
    // then the three exporters from monitoring; all from IPv4 sources, so no (v6) twin.
    const admin = `${address('lb-01').split('.').slice(0, 3).join('.')}.1`;
    const mon = address('mon-01');
    expect(rules).toEqual([
      `${P.ssh_port}/tcp ALLOW IN ${admin} # ssh from admin`,
      `${P.http_port}/tcp ALLOW IN ${address('lb-01')} # http from load balancer`,
      `${P.mysql_port}/tcp ALLOW IN ${address('web-02')} # mysql from database/app host`,
      `${P.db_health_port}/tcp ALLOW IN ${address('web-02')} # db health agent from app host`,
      `${P.node_exporter_port}/tcp ALLOW IN ${mon} # node exporter from monitoring`,
      `${P.nginx_exporter_port}/tcp ALLOW IN ${mon} # nginx exporter from monitoring`,
      `${P.mysqld_exporter_port}/tcp ALLOW IN ${mon} # mysqld exporter from monitoring`,
    ]);
  });
});
