// `npm run bench:deploy`: rolling deploys on the lab (lb-01, web-01, web-02), measured as a client sees
// them. Per round: a client in the lab's client namespace sends sequential HTTPS requests through the
// load balancer (keep-alive, the LB's certificate pinned); `provision deploy --json` rolls the other
// release out; every event line is timestamped as it arrives. Reported: the deploy time per host
// (send + drain + switch + restart + health + back UP, the `ready` event's ms), and the request
// latency p50/p99 before the deploy, while a server is drained (from its `drained` event to its
// `ready` event) and during the rest of the rollout; failed requests (must be 0).
//
// Env: PROVISION_BENCH_DEPLOY_SUBNET (default 10.111.2: a /24 of this bench's own), ROUNDS (default 4).
// Starts lab hosts: run it under the lab lock (`/work/labrun npm run bench:deploy`).
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { register } from 'tsx/esm/api';
import { cliOf, log, root, tmp } from './lib.mjs';

register();
const lab = await import('../src/lab/index.ts');

const NAME = 'd4bench';
const PREFIX = process.env.PROVISION_BENCH_DEPLOY_SUBNET ?? '10.111.2';
const ROUNDS = Number(process.env.ROUNDS ?? 4);
const DOMAIN = 'www.foobar.com';
const LB = `${PREFIX}.10`;

const SERVER = `const fs = require('fs');
const v = fs.readFileSync(__dirname + '/VERSION', 'utf8').trim();
const s = require('http').createServer((q, r) => r.end(q.url === '/health' ? 'ok' : v));
s.listen(Number(process.env.PORT), process.env.HOST);
process.on('SIGTERM', () => { s.close(() => process.exit(0)); setTimeout(() => process.exit(0), 3000).unref(); });
`;

// One line per answer: [epoch ms at start, latency ms, status]; stops when the stop file appears (at most 10 min).
const CLIENT = `const https = require('https'); const fs = require('fs');
const [lb, caFile, stop, domain] = process.argv.slice(2);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1 }); const ca = fs.readFileSync(caFile);
const t0 = Date.now();
function one() { return new Promise((done) => { const start = Date.now();
  const req = https.get({ host: lb, servername: domain, headers: { host: domain }, path: '/', ca, agent, timeout: 10000 }, (res) => {
    res.resume(); res.on('end', () => { console.log(JSON.stringify([start, Date.now() - start, res.statusCode])); done(); }); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => { console.log(JSON.stringify([start, Date.now() - start, 0])); done(); }); }); }
(async () => { while (!fs.existsSync(stop) && Date.now() - t0 < 600000) await one(); })();
`;

function release(dir, version) {
  const d = path.join(dir, `release-${version}`);
  mkdirSync(d, { recursive: true });
  writeFileSync(path.join(d, 'server.js'), SERVER);
  writeFileSync(path.join(d, 'VERSION'), `${version}\n`);
  return d;
}

/** Our CLI as a child; each stdout line handed to onLine with the time it arrived. */
function provisionStreaming(argv, onLine) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliOf(root), ...argv], { cwd: root, env: { ...process.env, CI: '1', NO_COLOR: '1' } });
    let buf = '';
    let err = '';
    child.stdout.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        onLine(buf.slice(0, i), Date.now());
        buf = buf.slice(i + 1);
      }
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => resolve({ code, stderr: err }));
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};

async function main() {
  const dir = tmp();
  writeFileSync(path.join(dir, 'client.cjs'), CLIENT);
  await lab.labDown(NAME);
  log(`lab ${NAME} up (${PREFIX}.0/24: lb-01, web-01, web-02)`);
  await lab.labUp({ name: NAME, subnet: `${PREFIX}.0/24`, only: ['lb-01', 'web-01', 'web-02'], pebble: false });
  const p = lab.labPaths(NAME);
  const inv = path.join(dir, 'inv.yml');
  writeFileSync(path.join(dir, 'inv.secrets.yml'), 'mysql_app_password: not-used-by-this-app-0123\n', { mode: 0o600 });
  writeFileSync(
    inv,
    `defaults: { user: root, identity_file: ${p.sshKey}, known_hosts: ${p.knownHosts}, connect_timeout: 5 }
hosts:
  lb-01: { address: ${LB}, groups: [loadbalancers] }
  web-01: { address: ${PREFIX}.11, groups: [webservers] }
  web-02: { address: ${PREFIX}.12, groups: [webservers] }
vars:
  domain: ${DOMAIN}
  mysql_app_password: !secret mysql_app_password
  app_packages: [nodejs]
  app_source: ${release(dir, 'v0')}
  deploy_health_timeout: 20
  deploy_drain_timeout: 10
  haproxy_check_interval: 1
`,
  );
  const play = path.join(dir, 'play.yml');
  writeFileSync(play, `- { name: web, hosts: webservers, roles: [nginx, app] }\n- { name: lb, hosts: loadbalancers, roles: [haproxy] }\n`);
  log('converging (nginx, app, haproxy)');
  const conv = await provisionStreaming(['-i', inv, '-p', play], () => {});
  if (conv.code !== 2) throw new Error(`converge exited ${conv.code}: ${conv.stderr.slice(-2000)}`);
  const pem = await lab.hostExec('lb-01', ['openssl', 'x509', '-in', `/etc/haproxy/certs/${DOMAIN}.pem`], NAME);
  const ca = path.join(dir, 'ca.pem');
  writeFileSync(ca, pem.stdout);
  const netns = JSON.parse(readFileSync(p.stateFile, 'utf8')).client.netns;

  const rounds = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const stop = path.join(dir, `stop-${r}`);
    const answers = [];
    const client = spawn('ip', ['netns', 'exec', netns, process.execPath, path.join(dir, 'client.cjs'), LB, ca, stop, DOMAIN]);
    let cbuf = '';
    client.stdout.on('data', (d) => {
      cbuf += d;
      for (let i = cbuf.indexOf('\n'); i >= 0; i = cbuf.indexOf('\n')) {
        answers.push(JSON.parse(cbuf.slice(0, i)));
        cbuf = cbuf.slice(i + 1);
      }
    });
    const closed = new Promise((res) => client.on('close', res));
    await new Promise((res) => setTimeout(res, 3000));
    const deployStart = Date.now();
    const drained = new Map();
    const windows = [];
    const perHost = [];
    const res = await provisionStreaming(['deploy', '-i', inv, '--json', '--release', release(dir, `v${r}`)], (line, at) => {
      let e;
      try {
        e = JSON.parse(line);
      } catch {
        return;
      }
      if (e.step === 'drained') drained.set(e.host, at);
      if (e.step === 'ready') {
        windows.push([drained.get(e.host), at]);
        perHost.push({ host: e.host, ms: e.ms });
      }
    });
    const deployEnd = Date.now();
    await new Promise((res2) => setTimeout(res2, 2000));
    writeFileSync(stop, '');
    await closed;
    if (res.code !== 2) throw new Error(`deploy round ${r} exited ${res.code}: ${res.stderr.slice(-2000)}`);
    const inDrain = (t) => windows.some(([a, b]) => t >= a && t <= b);
    const lat = (f) => answers.filter(f).map((a) => a[1]);
    const before = lat((a) => a[0] < deployStart);
    const draining = lat((a) => inDrain(a[0]));
    const rest = lat((a) => a[0] >= deployStart && a[0] <= deployEnd && !inDrain(a[0]));
    const round = {
      round: r,
      perHostMs: perHost.map((h) => `${h.host} ${h.ms}`),
      deployMs: deployEnd - deployStart,
      requests: answers.length,
      failed: answers.filter((a) => a[2] !== 200).length,
      before: { n: before.length, p50: pct(before, 50), p99: pct(before, 99) },
      drained: { n: draining.length, p50: pct(draining, 50), p99: pct(draining, 99) },
      restOfRollout: { n: rest.length, p50: pct(rest, 50), p99: pct(rest, 99) },
    };
    log(JSON.stringify(round));
    rounds.push(round);
  }
  const all = (k) => rounds.flatMap((x) => [x[k]]);
  console.log(JSON.stringify({ bench: 'deploy', load: (await import('node:os')).loadavg(), rounds }, null, 1));
  console.log(
    `deploy: per host ${rounds.flatMap((x) => x.perHostMs).join(', ')} ms; failed ${rounds.reduce((n, x) => n + x.failed, 0)} of ${rounds.reduce((n, x) => n + x.requests, 0)}; ` +
      `latency p50/p99 before ${all('before').map((x) => `${x.p50}/${x.p99}`).join(' ')}; while drained ${all('drained').map((x) => `${x.p50}/${x.p99}`).join(' ')} ms`,
  );
}

try {
  await main();
} finally {
  await lab.labDown(NAME);
}
