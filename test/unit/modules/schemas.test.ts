import { describe, expect, test } from 'vitest';
import { getModule, moduleNames } from '../../../src/modules/index.js';

/** The smallest valid params per module: the strictness test adds an unknown key to them. */
const MINIMAL: Record<string, Record<string, unknown>> = {
  apt: { packages: ['nginx'] },
  command: { cmd: 'true' },
  copy: { dest: '/etc/motd', content: 'hello\n' },
  file: { path: '/srv/app', state: 'directory' },
  group: { name: 'app' },
  lineinfile: { path: '/etc/hosts', line: '10.77.0.11 web-01' },
  mysql_accounts: { owner: 'role mysql', accounts: [] },
  mysql_db: { name: 'app' },
  mysql_query: { sql: 'SELECT 1' },
  mysql_replication: { primary_host: '10.77.0.11', user: 'replicator', password: 'replication-pw', seed_from: 'web-01' },
  mysql_topology: { primary: 'web-01' },
  mysql_user: { user: 'app', host: 'localhost' },
  service: { name: 'nginx', state: 'started' },
  template: { dest: '/etc/motd', src: '/dev/null' },
  ufw: { state: 'enabled' },
  user: { name: 'app' },
  internal_tls: { pki_dir: '/srv/inventory/site.pki', ca_file: '/etc/haproxy/backend-ca.pem' },
  peer_file: { from_host: 'lb-01', sources: ['/etc/letsencrypt/live/x/fullchain.pem'], dest: '/etc/haproxy/certs/x.pem' },
};

describe('module schemas', () => {
  test('every registered module has minimal params here', () => {
    expect(moduleNames().filter((m) => !(m in MINIMAL))).toEqual([]);
  });

  for (const name of Object.keys(MINIMAL)) {
    test(`${name}: accepts its minimal params`, () => {
      const r = getModule(name)!.schema.safeParse(MINIMAL[name]);
      expect(r.success, r.error?.message).toBe(true);
    });

    test(`${name}: rejects an unknown param (a typo is an error, never ignored)`, () => {
      const r = getModule(name)!.schema.safeParse({ ...MINIMAL[name], stat: 'present' });
      expect(r.success).toBe(false);
      expect(r.error!.issues.some((i) => i.code === 'unrecognized_keys')).toBe(true);
    });
  }
});
