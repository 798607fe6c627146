/** Numbering of the lab's cheap scale hosts: addresses, subnets, interface names. Pure. */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { LabError } from '../../../src/lab/errors.ts';
import { MAX_SCALE_HOSTS, SCALE_HOSTS_PER_SUBNET, scaleHostSpecs, scaleInventory, waitForScaleHost } from '../../../src/lab/scale.ts';

describe('scaleHostSpecs', () => {
  it('numbers hosts from .21 in the first subnet, then the next subnet, gateway .1 in each', () => {
    const specs = scaleHostSpecs('scale', ['10.98.0.0/24', '10.99.0.0/24'], SCALE_HOSTS_PER_SUBNET + 2);
    expect(specs[0]).toMatchObject({ name: 'scale-001', address: '10.98.0.21', gateway: '10.98.0.1', netns: 'provlab-scale-scale-001' });
    expect(specs[SCALE_HOSTS_PER_SUBNET - 1]).toMatchObject({ name: 'scale-200', address: '10.98.0.220' });
    expect(specs[SCALE_HOSTS_PER_SUBNET]).toMatchObject({ name: 'scale-201', address: '10.99.0.21', gateway: '10.99.0.1' });
    expect(new Set(specs.map((s) => s.address)).size).toBe(specs.length);
  });

  it('keeps clear of the gateway, the reference hosts and the client address', () => {
    const octets = scaleHostSpecs('scale', ['10.98.0.0/24'], SCALE_HOSTS_PER_SUBNET).map((s) => Number(s.address.split('.')[3]));
    for (const reserved of [1, 10, 11, 12, 20, 250]) expect(octets).not.toContain(reserved);
  });

  it('gives every host an interface name of at most 15 characters, distinct per instance', () => {
    const a = scaleHostSpecs('scale', ['10.98.0.0/24', '10.99.0.0/24', '10.100.0.0/24', '10.101.0.0/24', '10.102.0.0/24'], MAX_SCALE_HOSTS);
    expect(Math.max(...a.map((s) => s.veth.length))).toBeLessThanOrEqual(15);
    expect(new Set(a.map((s) => s.veth)).size).toBe(a.length);
    const b = scaleHostSpecs('other', ['10.98.0.0/24'], 1);
    expect(b[0]!.veth).not.toBe(a[0]!.veth);
  });

  it('refuses more hosts than the subnets hold, naming what to add', () => {
    expect(() => scaleHostSpecs('scale', ['10.98.0.0/24'], SCALE_HOSTS_PER_SUBNET + 1)).toThrow(LabError);
    expect(() => scaleHostSpecs('scale', ['10.98.0.0/24'], SCALE_HOSTS_PER_SUBNET + 1)).toThrow(/need 2 \/24 subnets.*--scale-subnets/);
    expect(() => scaleHostSpecs('scale', ['10.98.0.0/24'], -1)).toThrow(/--scale-hosts/);
    expect(() => scaleHostSpecs('scale', ['10.98.0.0/16'], 1)).toThrow(/only \/24/);
  });

  it('writes an inventory naming every host with the lab key and known_hosts', () => {
    const specs = scaleHostSpecs('scale', ['10.98.0.0/24'], 2);
    const inv = scaleInventory(specs, { sshKey: '/k', knownHosts: '/kh' }, '10.98.0.1');
    expect(inv).toContain('  scale-002:\n    address: 10.98.0.22');
    expect(inv).toContain('identity_file: /k');
    expect(inv).toContain('known_hosts: /kh');
  });
});

describe('waitForScaleHost', () => {
  // Right after spawn the recorded pid is still `ip netns exec …`, not yet `unshare`: that is a host
  // starting, not one whose sshd exited (the lab test "up again …" failed so on a loaded machine).
  it('a process that is not yet the recorded program, with its marker, is starting, not dead', async () => {
    const marker = '/var/lib/provision-lab/unit-test/scale/hosts/scale-009/seed';
    const child = spawn('/bin/sh', ['-c', 'sleep 5', 'launcher', marker], { stdio: 'ignore' });
    try {
      const spec = scaleHostSpecs('unit', ['10.99.0.0/24'], 1)[0]!;
      // Nothing answers SSH on that address from here: the wait ends at its bound, saying so.
      const err = await waitForScaleHost({ ...spec, address: '192.0.2.1' }, { pid: child.pid!, exe: 'unshare', marker }, 1500).catch((e: Error) => e);
      expect(String(err)).not.toMatch(/exited during start/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a process that is gone is reported as exited', async () => {
    const spec = scaleHostSpecs('unit', ['10.99.0.0/24'], 1)[0]!;
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    await new Promise((r) => child.once('exit', r));
    await expect(waitForScaleHost({ ...spec, address: '192.0.2.1' }, { pid: child.pid!, exe: 'unshare', marker: 'x' }, 1500)).rejects.toThrow(/exited during start/);
  });
});
