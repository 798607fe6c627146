import { execFileSync } from 'node:child_process';
import { describe, expect, test, vi } from 'vitest';
import type { ProbeResult } from '../../../src/facts/index.js';
import { ufwModule, type ModuleContext } from '../../../src/modules/index.js';
import { cancelRollbackCommand, parseTuple, parseUfwState, scheduleRollbackCommand, sshAllowed } from '../../../src/modules/ufw.js';
import { debianFacts, testHost } from './fixtures.js';
import { emptyPredictedState } from '../../../src/modules/types.js';

/** POSIX sh (dash where it exists) must parse the command without running it. */
function shellParses(cmd: string): void {
  const shell = ['/bin/dash', '/bin/sh'].find((s) => {
    try {
      execFileSync(s, ['-c', 'true']);
      return true;
    } catch {
      return false;
    }
  })!;
  execFileSync(shell, ['-n', '-c', cmd]);
}

describe('ufw state', () => {
  test('parses the tuple lines ufw writes', () => {
    expect(parseTuple(`allow tcp 22 0.0.0.0/0 any 10.77.0.0/24 in comment=${Buffer.from('admin ssh').toString('hex')}`)).toMatchObject({
      action: 'allow',
      proto: 'tcp',
      dport: '22',
      dst: 'any',
      src: '10.77.0.0/24',
      direction: 'in',
      comment: 'admin ssh',
    });
    expect(parseTuple('allow_log-all udp 53 0.0.0.0/0 any 0.0.0.0/0 out')).toMatchObject({ action: 'allow', log: 'log-all', direction: 'out' });
    expect(parseTuple('route:allow any any 10.0.0.0/8 any 0.0.0.0/0 in_eth0!out_eth1')).toMatchObject({ forward: true, ifaceIn: 'eth0', ifaceOut: 'eth1', dst: '10.0.0.0/8' });
    expect(parseTuple('allow tcp 22 0.0.0.0/0 any 10.9.0.0/16 OpenSSH - in')).toMatchObject({ dapp: 'OpenSSH', sapp: '' });
    expect(parseTuple('allow tcp')).toBeUndefined();
  });

  test('an IPv4 and IPv6 copy of one "any" rule is one rule', () => {
    const s = parseUfwState('installed\nENABLED=yes\nv4 allow tcp 80 0.0.0.0/0 any 0.0.0.0/0 in\nv6 allow tcp 80 ::/0 any ::/0 in\n');
    expect(s).toMatchObject({ installed: true, enabled: true });
    expect(s.rules).toHaveLength(1);
  });

  test("the probe's one grep over ufw's four files reads as the files themselves", () => {
    const files: Record<string, string> = {
      '/etc/ufw/ufw.conf': 'ENABLED=yes\nLOGLEVEL=low\n',
      '/etc/default/ufw': 'IPV6=yes\nDEFAULT_INPUT_POLICY="DROP"\nDEFAULT_OUTPUT_POLICY="ACCEPT"\nDEFAULT_FORWARD_POLICY="DROP"\n',
      '/etc/ufw/user.rules': '*filter\n### tuple ### allow tcp 22 0.0.0.0/0 any 10.0.0.0/8 in\n-A ufw-user-input -p tcp --dport 22 -s 10.0.0.0/8 -j ACCEPT\n### tuple ### allow tcp 9100 0.0.0.0/0 any 10.0.0.20 in\n',
      '/etc/ufw/user6.rules': '*filter\n### tuple ### deny udp 53 ::/0 any ::/0 in\n',
    };
    const grepped = Object.entries(files).flatMap(([f, text]) =>
      text.split('\n').filter((l) => /^(ENABLED|LOGLEVEL|DEFAULT_(INPUT|OUTPUT|FORWARD)_POLICY)=|^### tuple ### /.test(l)).map((l) => `${f}:${l}`),
    );
    const plain = [
      'ENABLED=yes', 'LOGLEVEL=low', 'DEFAULT_INPUT_POLICY="DROP"', 'DEFAULT_OUTPUT_POLICY="ACCEPT"', 'DEFAULT_FORWARD_POLICY="DROP"',
      'v4 allow tcp 22 0.0.0.0/0 any 10.0.0.0/8 in', 'v4 allow tcp 9100 0.0.0.0/0 any 10.0.0.20 in', 'v6 deny udp 53 ::/0 any ::/0 in',
    ];
    const s = parseUfwState(['installed', ...grepped, 'x'].join('\n'));
    expect(s).toEqual(parseUfwState(['installed', ...plain].join('\n')));
    expect(s).toMatchObject({ enabled: true, logging: 'low', defaults: { incoming: 'deny', outgoing: 'allow', routed: 'deny' } });
    expect(s.rules).toHaveLength(3);
  });
});

describe('lockout guard', () => {
  const rules = (lines: string[]) => lines.map((l) => parseTuple(l)!);
  test('an allow from a covering network on any port passes', () => {
    expect(sshAllowed(rules(['allow any any 0.0.0.0/0 any 10.0.0.0/8 in']), '10.77.0.1', 22, '10.77.0.11')).toBe(true);
  });
  test('an allow to another destination address does not count', () => {
    expect(sshAllowed(rules(['allow tcp 22 10.77.0.99 any 0.0.0.0/0 in']), '10.77.0.1', 22, '10.77.0.11')).toBe(false);
  });
  test('udp and other ports do not count', () => {
    expect(sshAllowed(rules(['allow udp 22 0.0.0.0/0 any 0.0.0.0/0 in', 'allow tcp 80,443 0.0.0.0/0 any 0.0.0.0/0 in']), '10.77.0.1', 22, '10.77.0.11')).toBe(false);
  });
  test('a deny for another network before the allow does not block', () => {
    expect(sshAllowed(rules(['deny any any 0.0.0.0/0 any 192.168.0.0/16 in', 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in']), '10.77.0.1', 22, '10.77.0.11')).toBe(true);
  });
});

function ctxFor(state: string, extra: Partial<ModuleContext> = {}): ModuleContext {
  return {
    host: testHost(),
    facts: debianFacts(),
    check: false,
    predicted: emptyPredictedState(),
    results: new Map<string, ProbeResult>([['ufw:state', { stdout: state, code: 0 }]]),
    run: async () => ({ stdout: '', code: 0 }),
    ...extra,
  };
}

describe('commit-confirm', () => {
  const params = ufwModule.schema.parse({
    state: 'enabled',
    admin_source: '10.77.0.1',
    commit_confirm_seconds: 60,
    rules: [{ rule: 'allow', port: 22, proto: 'tcp', from: '10.77.0.0/24' }],
  });
  const fresh = 'installed\nENABLED=no\nDEFAULT_INPUT_POLICY="DROP"\n';

  test('the scheduled rollback and its cancellation are valid POSIX sh', () => {
    const schedule = scheduleRollbackCommand(60);
    expect(schedule.kind).toBe('shell');
    if (schedule.kind === 'shell') shellParses(schedule.cmd);
    shellParses(cancelRollbackCommand());
    // The rollback itself travels quoted inside the schedule: it must restore the files and the running state.
    if (schedule.kind === 'shell') expect(schedule.cmd).toContain('ufw reload');
  });

  test('verify opens a new connection first, then cancels the rollback', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const order: string[] = [];
    const vctx = ctxFor(fresh, {
      reconnect: vi.fn(async () => void order.push('reconnect')),
      run: vi.fn(async (cmd: string) => {
        order.push(cmd.includes('provision-ufw-rollback') ? 'cancel' : cmd);
        return { stdout: 'cancelled', code: 0 };
      }),
    });
    await plan.verify!(vctx);
    expect(order).toEqual(['reconnect', 'cancel']);
  });

  test('a failed reconnect fails the task and leaves the rollback armed', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const run = vi.fn(async () => ({ stdout: '', code: 0 }));
    const vctx = ctxFor(fresh, { reconnect: async () => Promise.reject(new Error('connect ETIMEDOUT')), run });
    await expect(plan.verify!(vctx)).rejects.toThrow('rolls the change back within 60s');
    expect(run).not.toHaveBeenCalled();
  });

  test('a rollback that already ran fails the task', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const vctx = ctxFor(fresh, { run: async () => ({ stdout: 'the rollback already ran', code: 3 }) });
    await expect(plan.verify!(vctx)).rejects.toThrow('rollback had already started');
  });

  test('without reconnect (not wired) verify falls back to the existing connection', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const cmds: string[] = [];
    await plan.verify!(ctxFor(fresh, { run: async (cmd) => (cmds.push(cmd), { stdout: '', code: 0 }) }));
    expect(cmds[0]).toBe('true');
    expect(cmds[1]).toContain('provision-ufw-rollback');
  });

  test('every ufw command of a plan parses as POSIX sh', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    for (const c of plan.commands) if (c.kind === 'shell') shellParses(c.cmd);
  });
});
