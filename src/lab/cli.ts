import { LabError } from './errors.ts';
import {
  assertSupported, hostExecInteractive, labDown, labStatus, labUp, linkDown, linkUp, restoreHost,
  snapshotHost, startHost, stopHost, type UpOptions,
} from './lab.ts';

const USAGE = `usage: provision lab <command> [--name NAME]
  up [--subnet A.B.C.0/24] [--hosts N] [--only lb-01,web-01] [--no-pebble]
     [--scale-hosts N [--scale-subnets A.B.C.0/24,…]]   cheap hosts (sshd only) scale-001…, 200 per /24
  down | status
  snapshot HOST SNAP | restore HOST SNAP
  stop-host HOST | start-host HOST | link-down HOST | link-up HOST
  exec HOST -- CMD...`;

interface Parsed {
  command: string;
  positional: string[];
  rest: string[];
  name?: string;
  up: UpOptions;
}

function parse(args: string[]): Parsed {
  const dd = args.indexOf('--');
  const head = dd >= 0 ? args.slice(0, dd) : args;
  const rest = dd >= 0 ? args.slice(dd + 1) : [];
  const positional: string[] = [];
  const up: UpOptions = {};
  let name: string | undefined;
  for (let i = 0; i < head.length; i++) {
    const a = head[i]!;
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? head[++i];
      if (v === undefined || v === '') throw new LabError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--name': name = value(); break;
      case '--subnet': up.subnet = value(); break;
      case '--hosts': {
        const v = value();
        if (!/^\d+$/.test(v)) throw new LabError(`--hosts needs a number, got "${v}"`);
        up.hosts = Number(v);
        break;
      }
      case '--only': up.only = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--scale-hosts': {
        const v = value();
        if (!/^\d+$/.test(v)) throw new LabError(`--scale-hosts needs a number, got "${v}"`);
        up.scaleHosts = Number(v);
        break;
      }
      case '--scale-subnets': up.scaleSubnets = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--no-pebble': up.pebble = false; break;
      case '--pebble': up.pebble = true; break;
      case '-h': case '--help': positional.unshift('help'); break;
      default:
        if (a.startsWith('-')) throw new LabError(`unknown option ${a}\n${USAGE}`);
        positional.push(a);
    }
  }
  const command = positional.shift() ?? 'help';
  return { command, positional, rest, name, up: { ...up, name } };
}

function need(p: Parsed, n: number, what: string): string[] {
  if (p.positional.length !== n) throw new LabError(`usage: provision lab ${p.command} ${what}`);
  return p.positional;
}

const out = (s: string) => process.stdout.write(s + '\n');

async function dispatch(p: Parsed): Promise<number> {
  switch (p.command) {
    case 'help':
      out(USAGE);
      return 0;
    case 'up': {
      need(p, 0, '[options]');
      const r = await labUp({ ...p.up, log: (m) => out(m) });
      if (r.alreadyUp) out(`lab "${r.name}" is already up`);
      out(`lab "${r.name}" up in ${r.seconds.toFixed(1)} s${r.started.length ? ` (started: ${r.started.join(', ')})` : ''}`);
      for (const [h, a] of Object.entries(r.hosts)) out(`  ${h.padEnd(10)} ${a}`);
      if (r.scale) out(`  scale hosts  ${r.scale.hosts} (scale-001…) on ${r.scale.subnets.join(', ')}; inventory ${r.scale.inventory}`);
      out(`  ssh key      ${r.paths.sshKey}`);
      out(`  known_hosts  ${r.paths.knownHosts}`);
      out(`  apt proxy    ${r.paths.proxyUrl}`);
      out(`  client netns ${r.paths.clientNetns} (${r.paths.clientAddress})`);
      if (r.pebble) {
        out(`  ACME         ${r.paths.acmeDirectory}`);
        out(`  ACME CA      ${r.paths.pebbleCa}`);
      }
      return 0;
    }
    case 'down': {
      need(p, 0, '[--name NAME]');
      const r = await labDown(p.name);
      out(r.wasUp ? `lab "${r.name}" is down (${r.seconds.toFixed(1)} s)` : `lab "${r.name}" is not up`);
      return 0;
    }
    case 'status': {
      need(p, 0, '[--name NAME]');
      const s = await labStatus(p.name);
      if (!s.up) {
        out(`lab "${s.name}" is not up`);
        return 0;
      }
      out(`lab "${s.name}" (${s.subnet})`);
      for (const h of s.hosts) {
        out(`  ${h.name.padEnd(10)} ${h.address.padEnd(15)} ${h.running ? 'up  ' : 'down'} pid=${h.pid ?? '-'} link=${h.link ? 'up' : 'down'} ssh=${h.ssh ? 'ok' : 'no'}`);
      }
      const svc = Object.entries(s.services).map(([k, v]) => `${k}=${v ? 'up' : 'down'}`).join(' ');
      out(`  services   ${svc}`);
      if (s.scale) out(`  scale      ${s.scale.hosts} hosts, ${s.scale.running} running, ${s.scale.answering} answering SSH`);
      const scaleOk = !s.scale || s.scale.answering === s.scale.hosts;
      return s.hosts.every((h) => h.ssh) && s.services.proxy && scaleOk ? 0 : 1;
    }
    case 'snapshot': {
      const [host, snap] = need(p, 2, 'HOST SNAP');
      out(`snapshot ${snap} of ${host}: ${await snapshotHost(host!, snap!, p.name)}`);
      return 0;
    }
    case 'restore': {
      const [host, snap] = need(p, 2, 'HOST SNAP');
      await restoreHost(host!, snap!, p.name);
      out(`${host} restored from ${snap}`);
      return 0;
    }
    case 'stop-host': { const [h] = need(p, 1, 'HOST'); await stopHost(h!, p.name); out(`${h} stopped`); return 0; }
    case 'start-host': { const [h] = need(p, 1, 'HOST'); await startHost(h!, p.name); out(`${h} started`); return 0; }
    case 'link-down': { const [h] = need(p, 1, 'HOST'); await linkDown(h!, p.name); out(`${h} link down`); return 0; }
    case 'link-up': { const [h] = need(p, 1, 'HOST'); await linkUp(h!, p.name); out(`${h} link up`); return 0; }
    case 'exec': {
      const [h] = need(p, 1, 'HOST -- CMD...');
      if (p.rest.length === 0) throw new LabError('usage: provision lab exec HOST -- CMD...');
      return hostExecInteractive(h!, p.rest, p.name);
    }
    default:
      throw new LabError(`unknown lab command "${p.command}"\n${USAGE}`);
  }
}

/** `provision lab ...`: returns the exit code; errors become one line on stderr. */
export async function labMain(args: string[]): Promise<number> {
  // `provision lab status | head` must not end in a stack trace.
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', () => {});
  try {
    const p = parse(args);
    if (p.command !== 'help') assertSupported();
    return await dispatch(p);
  } catch (e) {
    const msg = e instanceof LabError ? e.message : `unexpected error: ${e instanceof Error ? e.message : String(e)}`;
    process.stderr.write(`provision lab: ${msg}\n`);
    return 1;
  }
}
