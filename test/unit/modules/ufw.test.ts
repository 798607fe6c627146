import { execFileSync } from 'node:child_process';
import { describe, expect, test, vi } from 'vitest';
import type { ProbeResult } from '../../../src/facts/index.js';
import { ufwModule, type ModuleContext } from '../../../src/modules/index.js';
import { parseRunConnection, parseTuple, parseUfwState, PROBE_SCRIPT, runConnectionVerdict, sshAllowed } from '../../../src/modules/ufw/index.js';
import { debianFacts, moduleContext, testHost } from './fixtures.js';
import { emptyPredictedState } from '../../../src/modules/contract.js';
import { ruleArgs, wantedRule } from '../../../src/modules/ufw/rules.js';
import { ruleKey } from '../../../src/modules/ufw/state.js';

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

describe("this run's own connection (SSH_CONNECTION)", () => {
  const probe = (env: Record<string, string>, wrap: (script: string) => string[]) =>
    execFileSync('/bin/dash', wrap(PROBE_SCRIPT), { env: { PATH: '/usr/bin:/bin', ...env } }).toString();

  test('the probe prints the client address, the address and the port it reached; never the client port', () => {
    const out = probe({ SSH_CONNECTION: '10.77.0.1 51234 10.77.0.11 22' }, (s) => ['-c', s]);
    expect(out).toMatch(/^CONNECTION=10\.77\.0\.1 10\.77\.0\.11 22$/m);
    expect(out).not.toContain('51234');
    expect(parseRunConnection(out)).toEqual({ client: '10.77.0.1', server: '10.77.0.11', port: 22 });
  });

  test('under sudo (the variable not passed on) it is read from the login above: here a parent whose environment has it', () => {
    // The outer shell has SSH_CONNECTION; the probe runs in a child started without it, as sudo does.
    const out = probe({ SSH_CONNECTION: '192.0.2.9 40000 10.77.0.11 2222', PROBE: PROBE_SCRIPT }, () => ['-c', 'env -u SSH_CONNECTION /bin/dash -c "$PROBE"; true']);
    expect(parseRunConnection(out)).toEqual({ client: '192.0.2.9', server: '10.77.0.11', port: 2222 });
  });

  test('no SSH_CONNECTION anywhere: no address (and the probe does not read its stdin, the batch script)', () => {
    const out = execFileSync('/bin/dash', ['-c', PROBE_SCRIPT], { env: { PATH: '/usr/bin:/bin' }, input: 'SSH_CONNECTION=6.6.6.6 1 6.6.6.6 22\n' }).toString();
    expect(out).toMatch(/^CONNECTION= {2}$/m);
    expect(parseRunConnection(out)).toBeUndefined();
  });

  test('the verdict is ufw\'s: first matching rule, else the default policy; unknowable matches count against', () => {
    const rules = (lines: string[]) => lines.map((l) => parseTuple(l)!);
    const conn = { client: '10.77.0.5', server: '10.77.0.11', port: 22 };
    expect(runConnectionVerdict(rules(['allow tcp 22 0.0.0.0/0 any 10.77.0.0/24 in']), 'deny', conn)).toEqual({ admitted: true, by: 'allow 22/tcp from 10.77.0.0/24' });
    expect(runConnectionVerdict(rules(['allow tcp 22 0.0.0.0/0 any 10.77.0.200 in']), 'deny', conn)).toEqual({ admitted: false, by: 'the default incoming policy (deny)' });
    expect(runConnectionVerdict(rules(['allow tcp 22 0.0.0.0/0 any 10.77.0.200 in']), 'allow', conn).admitted).toBe(true);
    expect(runConnectionVerdict(rules(['reject tcp 22 0.0.0.0/0 any 10.77.0.5 in', 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in']), 'allow', conn).admitted).toBe(false);
    // To another address of the host (the run reached 10.77.0.11): does not match.
    expect(runConnectionVerdict(rules(['allow tcp 22 10.77.0.99 any 0.0.0.0/0 in']), 'deny', conn).admitted).toBe(false);
    // An allow only on some interface may not match; a deny on some interface may.
    expect(runConnectionVerdict(rules(['allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in_eth1']), 'deny', conn).admitted).toBe(false);
    expect(runConnectionVerdict(rules(['deny tcp 22 0.0.0.0/0 any 0.0.0.0/0 in_eth1', 'allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in']), 'allow', conn).admitted).toBe(false);
    expect(runConnectionVerdict([], 'deny', { ...conn, client: '127.0.0.1', server: '127.0.0.1' }).admitted).toBe(true);
  });
});

function ctxFor(state: string, extra: Partial<Omit<ModuleContext, 'read'>> = {}): ModuleContext {
  return moduleContext({
    host: testHost(),
    facts: debianFacts(),
    check: false,
    predicted: emptyPredictedState(),
    results: new Map<string, ProbeResult>([['ufw:state', { stdout: state, code: 0 }]]),
    run: async () => ({ stdout: '', code: 0 }),
    ...extra,
  });
}

describe('ufw apply: one transaction', () => {
  const params = ufwModule.schema.parse({
    state: 'enabled',
    admin_source: '10.77.0.1',
    commit_confirm_seconds: 60,
    rules: [
      { rule: 'allow', port: 22, proto: 'tcp', from: '10.77.0.0/24' },
      { rule: 'allow', port: 443, proto: 'tcp', comment: "it's https; rm -rf /" },
    ],
  });
  const fresh = 'installed\nENABLED=no\nDEFAULT_INPUT_POLICY="DROP"\nCONNECTION=10.77.0.1 10.77.0.11 22\n';
  const shellOf = (plan: Awaited<ReturnType<typeof ufwModule.plan>>) => {
    expect(plan.commands).toHaveLength(1);
    const c = plan.commands[0]!;
    if (c.kind !== 'shell') throw new Error('not a shell command');
    return c;
  };

  test('the whole change is one command: lock, backup, the rollback armed, then the ufw commands in order, enable last', async () => {
    const c = shellOf(await ufwModule.plan(params, ctxFor(fresh)));
    expect(c.describe).toBe('apply 3 ufw commands as one transaction (commit-confirm 60s)');
    shellParses(c.cmd);
    const order = ['flock -w 60 9', 'cp -a /etc/ufw/.', 'systemd-run --quiet --on-active=60s --timer-property=AccuracySec=1s --unit="$UNIT"', 'step ufw allow proto tcp from 10.77.0.0/24', 'step ufw allow proto tcp from any to any port 443', 'step ufw --force enable'];
    const at = order.map((s) => c.cmd.indexOf(s));
    expect(at.every((i) => i >= 0), `all of ${order.join(' | ')}`).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
  });

  test('each ufw command gets exactly its arguments (the quoting survives both shells)', async () => {
    const c = shellOf(await ufwModule.plan(params, ctxFor(fresh)));
    // Run the apply's step list with a ufw that prints its argv, one argument per line.
    const script = c.cmd.replace(/^sh -c /, '');
    const unquoted = execFileSync('/bin/dash', ['-c', `printf '%s' ${script}`]).toString();
    const apply = /\napply\(\) \{\n([\s\S]*?)\n\}\n/.exec(unquoted)![1]!;
    const argv = execFileSync('/bin/dash', ['-c', `step() { shift; for a in "$@"; do printf '%s|' "$a"; done; echo; }\n${apply.replace(/ \|\| return/g, '')}`]).toString();
    expect(argv.split('\n')[1]).toBe("allow|proto|tcp|from|any|to|any|port|443|comment|it's https; rm -rf /|");
  });

  test('verify opens a new connection first, then confirms under the lock', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const order: string[] = [];
    const vctx = ctxFor(fresh, {
      reconnect: vi.fn(async () => void order.push('reconnect')),
      run: vi.fn(async (cmd: string) => {
        order.push(cmd.includes('record confirmed') ? 'confirm' : cmd);
        return { stdout: 'confirmed\n', code: 0 };
      }),
    });
    await plan.verify!(vctx);
    expect(order).toEqual(['reconnect', 'confirm']);
  });

  test('a failed new login: rolled back at once over the existing connection, and the message says so', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const cmds: string[] = [];
    const vctx = ctxFor(fresh, {
      reconnect: async () => Promise.reject(new Error('connect ETIMEDOUT')),
      run: async (cmd) => (cmds.push(cmd), { stdout: 'rolled-back\n', code: 0 }),
    });
    await expect(plan.verify!(vctx)).rejects.toThrow(
      "a new SSH connection failed after the ufw change (connect ETIMEDOUT); rolled back at once over the run's existing connection: the previous ufw files and state are in place",
    );
    expect(cmds).toHaveLength(1);
    expect(cmds[0]).toMatch(/^sh \/var\/lib\/provision\/ufw-txn\/rollback\.sh [0-9a-f]{12} now$/);
  });

  test('a failed new login and a dead session: the host rolls back by itself, and the message says when', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const vctx = ctxFor(fresh, {
      reconnect: async () => Promise.reject(new Error('connect ETIMEDOUT')),
      run: async () => Promise.reject(new Error('connection lost')),
    });
    await expect(plan.verify!(vctx)).rejects.toThrow(
      "the existing connection did not answer either (connection lost); the host's own rollback restores the previous ufw files and state within 60s of the start of the change",
    );
  });

  test('a rollback that ran before the confirmation: the task fails saying the change is undone', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const vctx = ctxFor(fresh, { run: async (cmd) => (cmd === 'true' ? { stdout: '', code: 0 } : { stdout: 'rolled back\n', code: 3 }) });
    await expect(plan.verify!(vctx)).rejects.toThrow('the ufw change was rolled back before it could be confirmed');
  });

  test('without reconnect (not wired) verify falls back to the existing connection', async () => {
    const plan = await ufwModule.plan(params, ctxFor(fresh));
    const cmds: string[] = [];
    await plan.verify!(ctxFor(fresh, { run: async (cmd) => (cmds.push(cmd), { stdout: 'confirmed\n', code: 0 }) }));
    expect(cmds[0]).toBe('true');
    expect(cmds[1]).toContain('record confirmed');
  });

  test('the rollback and the confirmation act on this change only (a fresh id per plan)', async () => {
    const a = shellOf(await ufwModule.plan(params, ctxFor(fresh))).cmd;
    const b = shellOf(await ufwModule.plan(params, ctxFor(fresh))).cmd;
    const id = (cmd: string) => /\nID=([0-9a-f]{12})\n/.exec(cmd)?.[1];
    expect(id(a)).toBeDefined();
    expect(id(a)).not.toBe(id(b));
  });
});

describe('VRRP rules (keepalived between a load-balancer pair)', () => {
  test('a rule with proto vrrp is the one ufw lists: same key, so a second run changes nothing', () => {
    const want = wantedRule({ rule: 'allow', proto: 'vrrp', from: '10.87.0.13', comment: 'vrrp from load-balancer peer' });
    expect(ruleArgs(want, 'add')).toEqual(['ufw', 'allow', 'proto', 'vrrp', 'from', '10.87.0.13', 'to', 'any', 'comment', 'vrrp from load-balancer peer']);
    // The tuple line ufw 0.36.2 writes for it (user.rules).
    const listed = parseTuple(`allow vrrp any 0.0.0.0/0 any 10.87.0.13 in comment=${Buffer.from('vrrp from load-balancer peer').toString('hex')}`)!;
    expect(ruleKey(listed)).toBe(ruleKey(want));
  });

  test('proto vrrp takes no port', () => {
    const r = ufwModule.schema.safeParse({ rules: [{ rule: 'allow', proto: 'vrrp', port: 112, from: '10.0.0.2' }] });
    expect(r.success).toBe(false);
    expect(r.error!.message).toContain('proto vrrp takes no port');
  });
});
