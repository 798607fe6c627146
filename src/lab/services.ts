import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run, spawnDetached, sleep } from './exec.ts';
import { LabError } from './errors.ts';
import {
  ACME_PORT, CHALLTEST_DNS_PORT, CHALLTEST_MGMT_PORT, PEBBLE_MGMT_PORT, PROXY_PORT,
  instanceFiles, type Layout,
} from './layout.ts';
import { isAlive, type ProcRecord } from './state.ts';

/** Called right after spawning, before readiness, so a process that never gets ready is still recorded (and stopped by `lab down`). */
type OnSpawn = (rec: ProcRecord) => void;

async function waitFor(what: string, check: () => Promise<boolean>, alive: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    if (!alive()) throw new LabError(`${what} exited during start; see its log`);
    await sleep(200);
  }
  throw new LabError(`${what} did not answer within ${timeoutMs / 1000} s`);
}

async function curlOk(args: string[]): Promise<boolean> {
  const res = await run('curl', ['-sS', '-o', '/dev/null', '--max-time', '2', '--noproxy', '*', ...args], { allowFail: true });
  return res.code === 0;
}

function proxyUser(): string {
  // The package's own unprivileged user when it exists; tinyproxy drops root to it.
  return readFileSync('/etc/passwd', 'utf8').split('\n').some((l) => l.startsWith('tinyproxy:')) ? 'tinyproxy' : 'nobody';
}

function proxyGroup(user: string): string {
  if (user === 'tinyproxy') return 'tinyproxy';
  return readFileSync('/etc/group', 'utf8').split('\n').some((l) => l.startsWith('nogroup:')) ? 'nogroup' : 'nobody';
}

/**
 * The hosts' only way out: an HTTP proxy on the gateway, for the lab subnet only,
 * and only to the Debian mirrors the machine itself uses.
 */
export async function startProxy(layout: Layout, allowedHosts: string[], record: OnSpawn): Promise<void> {
  const f = instanceFiles(layout.stateDir);
  mkdirSync(f.proxyDir, { recursive: true });
  const conf = join(f.proxyDir, 'tinyproxy.conf');
  const filter = join(f.proxyDir, 'allowed-hosts');
  writeFileSync(filter, allowedHosts.join('\n') + '\n');
  const user = proxyUser();
  writeFileSync(
    conf,
    [
      '# Written by provision lab; the lab starts and stops this proxy itself.',
      `User ${user}`,
      `Group ${proxyGroup(user)}`,
      `Listen ${layout.gateway}`,
      `Port ${PROXY_PORT}`,
      'Timeout 600',
      'MaxClients 200',
      `Allow ${layout.subnet}`,
      'ConnectPort 443',
      'DisableViaHeader Yes',
      'LogLevel Notice',
      `Filter "${filter}"`,
      'FilterType fnmatch',
      'FilterDefaultDeny Yes',
      '',
    ].join('\n'),
  );
  const pid = spawnDetached('tinyproxy', ['-d', '-c', conf], join(f.logDir, 'tinyproxy.log'));
  const rec: ProcRecord = { pid, exe: 'tinyproxy', marker: conf };
  record(rec);
  await waitFor('tinyproxy', () => tcpListening(layout.gateway, PROXY_PORT), () => isAlive(rec), 15_000);
}

async function tcpListening(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port });
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

/**
 * Pebble's TLS: a small CA (ca.pem, what clients trust) and a server cert for the
 * gateway IP signed by it. Regenerated when the gateway changes.
 */
async function ensurePebbleTls(layout: Layout): Promise<{ cert: string; key: string }> {
  const dir = instanceFiles(layout.stateDir).pebbleDir;
  mkdirSync(dir, { recursive: true });
  const p = (n: string) => join(dir, n);
  const stamp = p('tls-for');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === layout.gateway && existsSync(p('cert.pem'))) {
    return { cert: p('cert.pem'), key: p('key.pem') };
  }
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', p('ca-key.pem'), '-out', p('ca.pem'), '-days', '3650', '-subj', `/CN=provision lab ${layout.name} Pebble TLS CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', p('key.pem'), '-out', p('server.csr'), '-subj', `/CN=${layout.gateway}`]);
  writeFileSync(p('server.ext'), [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=IP:${layout.gateway},DNS:localhost`,
    'authorityKeyIdentifier=keyid',
    'subjectKeyIdentifier=hash',
    '',
  ].join('\n'));
  await run('openssl', ['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca-key.pem'),
    '-CAcreateserial', '-out', p('cert.pem'), '-days', '825', '-extfile', p('server.ext')]);
  writeFileSync(stamp, layout.gateway + '\n');
  return { cert: p('cert.pem'), key: p('key.pem') };
}

/** A fake DNS for Pebble: every name (www.foobar.com) resolves to the load balancer. */
export async function startChalltestsrv(layout: Layout, lbAddress: string, record: OnSpawn): Promise<void> {
  const f = instanceFiles(layout.stateDir);
  mkdirSync(f.pebbleDir, { recursive: true });
  const mgmt = `${layout.gateway}:${CHALLTEST_MGMT_PORT}`;
  const args = [
    '-defaultIPv4', lbAddress,
    // No AAAA answers: validation must go to the load balancer, never to ::1.
    '-defaultIPv6', '',
    '-dns01', `${layout.gateway}:${CHALLTEST_DNS_PORT}`,
    '-management', mgmt,
    '-http01', '', '-tlsalpn01', '', '-https01', '',
  ];
  const pid = spawnDetached('pebble-challtestsrv', args, join(f.logDir, 'challtestsrv.log'));
  const rec: ProcRecord = { pid, exe: 'pebble-challtestsrv', marker: mgmt };
  record(rec);
  await waitFor('pebble-challtestsrv', () => tcpListening(layout.gateway, CHALLTEST_MGMT_PORT), () => isAlive(rec), 15_000);
}

export async function startPebble(layout: Layout, record: OnSpawn): Promise<void> {
  const f = instanceFiles(layout.stateDir);
  const tls = await ensurePebbleTls(layout);
  const config = join(f.pebbleDir, 'pebble-config.json');
  writeFileSync(config, JSON.stringify({
    pebble: {
      listenAddress: `${layout.gateway}:${ACME_PORT}`,
      managementListenAddress: `${layout.gateway}:${PEBBLE_MGMT_PORT}`,
      certificate: tls.cert,
      privateKey: tls.key,
      httpPort: 80,
      tlsPort: 443,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  }, null, 2) + '\n');
  const env = { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' };
  const pid = spawnDetached('pebble', ['-config', config, '-dnsserver', `${layout.gateway}:${CHALLTEST_DNS_PORT}`], join(f.logDir, 'pebble.log'), env);
  const rec: ProcRecord = { pid, exe: 'pebble', marker: config };
  record(rec);
  await waitFor('pebble', () => curlOk(['--cacert', f.pebbleCa, `https://${layout.gateway}:${ACME_PORT}/dir`]), () => isAlive(rec), 20_000);
}

export async function acmeAnswers(layout: Layout): Promise<boolean> {
  return curlOk(['--cacert', instanceFiles(layout.stateDir).pebbleCa, `https://${layout.gateway}:${ACME_PORT}/dir`]);
}

export { tcpListening };
