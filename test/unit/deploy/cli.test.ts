import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { captureOutput } from '../helpers/output.ts';

const { stderr } = captureOutput();
let inv: string;
const SECRET_ENV = 'PROVISION_SECRET_MYSQL_APP_PASSWORD';

beforeAll(() => {
  const dir = mkdtempSync(path.join(tmpdir(), 'provision-deploy-cli-'));
  inv = path.join(dir, 'inv.yml');
  // Web servers and a load balancer on a closed port of this machine: a connection attempt is unreachable at once.
  writeFileSync(
    inv,
    `hosts:
  lb-01: { address: 127.0.0.1, port: 1, connect_timeout: 2, groups: [loadbalancers] }
  web-01: { address: 127.0.0.1, port: 1, connect_timeout: 2, groups: [webservers] }
vars:
  mysql_app_password: !secret mysql_app_password
`,
  );
  process.env[SECRET_ENV] = 'unit-test-password-1';
});
afterAll(() => {
  delete process.env[SECRET_ENV];
});

describe('provision deploy: bad input before any connection, unreachable before any change', () => {
  it('a release that is not there: exit 4, naming it (no host contacted: that would be exit 3)', async () => {
    expect(await main(['deploy', '-i', inv, '--release', '/nonexistent/release'])).toBe(4);
    expect(stderr.join('')).toContain('release /nonexistent/release: no such file or directory on the control machine');
  });

  it('a bad deploy var: exit 4 naming it', async () => {
    const bad = inv.replace('inv.yml', 'bad.yml');
    writeFileSync(bad, `${readFileSync(inv, 'utf8')}  deploy_batch: 0\n`);
    expect(await main(['deploy', '-i', bad])).toBe(4);
    expect(stderr.join('')).toMatch(/deploy_batch: a whole number ≥ 1/);
  });

  it('an unreachable host: exit 3, nothing deployed', async () => {
    expect(await main(['deploy', '-i', inv])).toBe(3);
    expect(stderr.join('')).toContain('nothing deployed');
  });
});
