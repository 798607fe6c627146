/** Hosts for tests against an in-process ssh2 server on loopback. */
import type { Host } from '../../../src/inventory/index.ts';

type Connection = Host['connection'];

/**
 * A host at 127.0.0.1: root, no become, no new host keys accepted, a 5 s connect timeout, unless
 * `connection` says otherwise; `port` and `knownHosts` always come from the test.
 */
export function loopbackHost(
  connection: Pick<Connection, 'port' | 'knownHosts'> & Partial<Connection>,
  host: Partial<Pick<Host, 'name' | 'groups'>> = {},
): Host {
  return {
    name: host.name ?? 'web-01',
    address: '127.0.0.1',
    groups: host.groups ?? ['all'],
    vars: {},
    connection: { user: 'root', acceptNewHostKeys: false, become: false, becomeUser: 'root', connectTimeoutMs: 5000, ...connection },
  };
}
