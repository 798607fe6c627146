// A real network's round-trip time in the lab, whose hosts are a bridge away: bench/relay.mjs runs
// as an unprivileged user and delays each direction by RTT/2; one iptables REDIRECT rule per host
// sends every SSH connection to that host through it, except the relay's own (owner match), so
// inventories and host keys stay as they are (the client still believes it talks to the host).
//
// The rules are removed by what was added (never a flush), when the work is done, when the bench
// is interrupted (SIGINT, SIGTERM) and, for a bench that was killed outright, by the next bench run
// (the rules it added are recorded in a file before they are added).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { log, root } from './lib.mjs';

const COMMENT = 'provision-bench-relay';
const RELAY_USER = 'nobody';

function userIds(name) {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name} for the relay`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** The rule for one host, as the arguments after -A/-D. */
function ruleFor(address, port, uid) {
  return ['OUTPUT', '-p', 'tcp', '-d', address, '--dport', '22', '-m', 'owner', '!', '--uid-owner', String(uid), '-m', 'comment', '--comment', COMMENT, '-j', 'REDIRECT', '--to-ports', String(port)];
}

function deleteRule(rule) {
  // A rule added twice (a crashed run, then this one) is removed as many times as it is there.
  for (let i = 0; i < 5; i++) if (spawnSync('iptables', ['-w', '-t', 'nat', '-D', ...rule]).status !== 0) break;
}

function relayAlive(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bench/relay.mjs');
  } catch {
    return false;
  }
}

/** What an earlier bench that was killed outright left: its rules and its relay. */
export function cleanupStale(stateFile) {
  if (!existsSync(stateFile)) return;
  const s = JSON.parse(readFileSync(stateFile, 'utf8'));
  for (const rule of s.rules ?? []) deleteRule(rule);
  if (s.relayPid && relayAlive(s.relayPid)) process.kill(s.relayPid, 'SIGKILL');
  rmSync(stateFile, { force: true });
  log(`removed ${s.rules?.length ?? 0} relay rules left by an earlier run`);
}

/**
 * Runs `fn` with `rttMs` of round-trip time added to every SSH connection to `addresses`.
 * 0 runs `fn` directly (no relay): the lab as it is.
 */
export async function withLatency({ rttMs, addresses, stateFile, firstPort = 41000 }, fn) {
  if (!rttMs) return fn();
  cleanupStale(stateFile);
  const { uid, gid } = userIds(RELAY_USER);
  const map = addresses.map((a, i) => `${firstPort + i}=${a}:22`).join(',');
  const relay = spawn(process.execPath, [path.join(root, 'bench/relay.mjs'), '--delay-ms', String(rttMs / 2), '--map', map], {
    uid, gid, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/',
  });
  const rules = addresses.map((a, i) => ruleFor(a, firstPort + i, uid));
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    for (const rule of rules) deleteRule(rule);
    if (relay.exitCode === null) relay.kill('SIGKILL');
    rmSync(stateFile, { force: true });
  };
  const onSignal = (sig) => {
    cleanup();
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', cleanup);
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      let err = '';
      relay.stdout.on('data', (d) => {
        out += d;
        if (out.includes('relay: ready')) resolve();
      });
      relay.stderr.on('data', (d) => (err += d));
      relay.on('exit', (code) => reject(new Error(`the relay exited (${code}) before it was ready: ${err.trim()}`)));
    });
    writeFileSync(stateFile, JSON.stringify({ relayPid: relay.pid, rules }) + '\n');
    for (const rule of rules) spawnSync('iptables', ['-w', '-t', 'nat', '-A', ...rule], { stdio: 'inherit' });
    log(`${rttMs} ms round-trip time on SSH to ${addresses.join(', ')} (relay pid ${relay.pid} as ${RELAY_USER})`);
    return await fn();
  } finally {
    cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', cleanup);
  }
}
