import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { run } from './exec.ts';
import type { Layout } from './layout.ts';

export async function linkExists(name: string): Promise<boolean> {
  return existsSync(`/sys/class/net/${name}`);
}

export async function netnsExists(ns: string): Promise<boolean> {
  return existsSync(`/run/netns/${ns}`);
}

/** The bridge carries the lab subnet; the machine keeps the gateway address on it and routes nowhere else. */
export async function ensureBridge(layout: Layout): Promise<void> {
  if (!(await linkExists(layout.bridge))) {
    await run('ip', ['link', 'add', layout.bridge, 'type', 'bridge']);
  }
  await run('ip', ['addr', 'replace', `${layout.gateway}/24`, 'dev', layout.bridge]);
  await run('ip', ['link', 'set', layout.bridge, 'up']);
}

/**
 * With br_netfilter loaded, frames between bridge ports traverse the machine's
 * FORWARD chain, whose policy we do not own. An explicit ACCEPT for traffic that
 * stays on the lab bridge keeps the lab independent of it (added even while the
 * module is absent, since it may be loaded later). It forwards nothing off the bridge.
 */
export function forwardRule(layout: Layout): string[] {
  return ['FORWARD', '-i', layout.bridge, '-o', layout.bridge, '-m', 'comment', '--comment', `provision-lab:${layout.name}`, '-j', 'ACCEPT'];
}

export async function ensureForwardRule(rule: string[]): Promise<void> {
  const present = await run('iptables', ['-w', '-C', ...rule], { allowFail: true });
  if (present.code !== 0) await run('iptables', ['-w', '-I', ...rule]);
}

export async function removeForwardRule(rule: string[]): Promise<void> {
  // A rule inserted twice by concurrent runs is removed completely.
  for (let i = 0; i < 10; i++) {
    const res = await run('iptables', ['-w', '-D', ...rule], { allowFail: true });
    if (res.code !== 0) break;
  }
}

export function bridgeNetfilterEnabled(): boolean {
  const f = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  return existsSync(f) && readFileSync(f, 'utf8').trim() === '1';
}

/**
 * The namespace's own resolv.conf (`ip netns exec` binds /etc/netns/NS/resolv.conf over /etc/resolv.conf):
 * the lab has no DNS for its namespaces, so a name lookup there fails at once (nothing answers on the
 * namespace's loopback) instead of waiting out the machine's resolver, which the namespace cannot reach.
 * Tools that probe with lookups of their own (testssl.sh looks up "invalid." for every curve) stay fast.
 */
export function netnsConfigDir(ns: string): string {
  return `/etc/netns/${ns}`;
}

/**
 * A network namespace with one veth onto the bridge, named eth0 inside, the given
 * address, and a default route via the gateway (which forwards nothing further).
 */
export async function ensureAttachedNetns(layout: Layout, ns: string, veth: string, address: string): Promise<void> {
  if (!(await netnsExists(ns))) await run('ip', ['netns', 'add', ns]);
  mkdirSync(netnsConfigDir(ns), { recursive: true });
  writeFileSync(`${netnsConfigDir(ns)}/resolv.conf`, '# provision lab: no DNS in this namespace; lookups fail at once\nnameserver 127.0.0.1\n');
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  if (!(await linkExists(veth))) {
    await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  }
  await run('ip', ['link', 'set', veth, 'master', layout.bridge]);
  await run('ip', ['link', 'set', veth, 'up']);
  await run('ip', ['-n', ns, 'addr', 'replace', `${address}/24`, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', layout.gateway]);
}

export async function setLink(veth: string, up: boolean): Promise<void> {
  await run('ip', ['link', 'set', veth, up ? 'up' : 'down']);
}

export async function linkIsUp(veth: string): Promise<boolean> {
  try {
    return readFileSync(`/sys/class/net/${veth}/operstate`, 'utf8').trim() !== 'down';
  } catch {
    return false;
  }
}

export async function deleteLink(name: string): Promise<void> {
  if (await linkExists(name)) await run('ip', ['link', 'del', name], { allowFail: true });
}

export async function deleteNetns(ns: string): Promise<void> {
  if (await netnsExists(ns)) await run('ip', ['netns', 'del', ns], { allowFail: true });
  rmSync(netnsConfigDir(ns), { recursive: true, force: true });
}
