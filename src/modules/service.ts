import { z } from 'zod';
import { quote } from '../util/quote.js';
import type { Change, Command, ModuleDef } from './types.js';

const params = z.strictObject({
  // Never starting with "-": systemctl, service and update-rc.d would read it as an option.
  name: z.string().regex(/^(?!-)[A-Za-z0-9@._-]+$/, 'a unit name (letters, digits, @ . _ -; not starting with -)'),
  state: z.enum(['started', 'stopped', 'restarted', 'reloaded']).optional(),
  enabled: z.boolean().optional(),
  daemon_reload: z.boolean().default(false),
  /**
   * The state its package leaves this unit in right after installing it: Debian starts most
   * services (the default); one that cannot start before it is configured stays stopped. Only a
   * dry run on a host without the package reads it, to predict exactly what the real run will do.
   */
  after_install: z.enum(['started', 'stopped']).default('started'),
});
export type ServiceParams = z.input<typeof params>;

interface UnitState {
  load: string; // loaded, not-found, masked
  active: string; // active, inactive, failed, activating…
  enabled: string; // enabled, disabled, static, masked, ""
}

function unitName(name: string): string {
  return name.includes('.') ? name : `${name}.service`;
}

const UNITS_GROUP = 'systemd-units';
const readUnits = (units: string[]) => `systemctl show -p Names -p LoadState -p ActiveState -p UnitFileState ${units.map(quote).join(' ')} 2>/dev/null`;

/** The paragraph of `systemctl show` output whose Names= line lists the unit (an alias counts). */
export function pickUnit(out: { stdout: string; code: number }, unit: string): { stdout: string; code: number } {
  for (const block of out.stdout.split(/\n\s*\n/)) {
    const names = /^Names=(.*)$/m.exec(block)?.[1]?.split(' ') ?? [];
    if (names.includes(unit)) return { stdout: block.trim() + '\n', code: 0 };
  }
  return { stdout: '', code: out.code };
}

export const serviceModule: ModuleDef<z.output<typeof params>> = {
  name: 'service',
  schema: params,
  probes(p, _host, facts) {
    if (facts.init === 'systemd') {
      // One `systemctl show` for every unit of the batch (each call costs tens of ms on the host);
      // this unit's block is the one whose Names (aliases included) has it.
      return [{ key: `service:${p.name}`, shared: { group: UNITS_GROUP, item: unitName(p.name), read: readUnits, pick: pickUnit } }];
    }
    const s = quote(`/etc/init.d/${p.name.replace(/\.service$/, '')}`);
    return [
      {
        key: `service:${p.name}`,
        script: `if [ -x ${s} ]; then echo LoadState=loaded; if ${s} status >/dev/null 2>&1; then echo ActiveState=active; else echo ActiveState=inactive; fi; ls /etc/rc2.d/S*${quote(p.name)} >/dev/null 2>&1 && echo UnitFileState=enabled || echo UnitFileState=disabled; else echo LoadState=not-found; fi`,
      },
    ];
  },
  plan(p, ctx) {
    const kv = Object.fromEntries(
      (ctx.results.get(`service:${p.name}`)?.stdout ?? '').split('\n').map((l) => l.split('=', 2) as [string, string]).filter((x) => x.length === 2),
    );
    const unit = unitName(p.name);
    const predictedActive = ctx.check ? ctx.predicted.services.get(unit) : undefined;
    let cur: UnitState = { load: kv.LoadState ?? 'not-found', active: predictedActive ?? kv.ActiveState ?? 'inactive', enabled: kv.UnitFileState ?? '' };
    let note: string | undefined;
    if (cur.load === 'not-found') {
      // A unit that an earlier task would have installed (package or unit file) does not exist yet in a
      // dry run: predict "would start" instead of failing, unlike Ansible's check mode.
      if (ctx.check && ctx.predicted.anyChange) {
        const fromUnitFile = [...ctx.predicted.files.keys()].some((f) => f.endsWith(`/${unit}`));
        if (!fromUnitFile && ctx.predicted.packagesInstalled.size > 0 && p.after_install === 'started') {
          // Debian starts and enables a service when its package is installed: predict that,
          // so the dry run's list of changes is the real run's.
          cur = { load: 'loaded', active: predictedActive ?? 'active', enabled: 'enabled' };
          note = `${unit} is not on the host yet; a package installed earlier in this run would provide it (started and enabled, as Debian does)`;
        } else if (!fromUnitFile && ctx.predicted.packagesInstalled.size > 0) {
          // Enabled by its package, but not running (it cannot start before it is configured).
          cur = { load: 'loaded', active: predictedActive ?? 'inactive', enabled: 'enabled' };
          note = `${unit} is not on the host yet; a package installed earlier in this run would provide it (enabled, not running)`;
        } else {
          cur = { load: 'loaded', active: predictedActive ?? 'inactive', enabled: 'disabled' };
          note = `${unit} is not on the host yet; an earlier task in this run would provide it`;
        }
      } else {
        throw new Error(`unit ${unit} not found on the host`);
      }
    }
    if (cur.load === 'masked' && (p.state === 'started' || p.enabled)) throw new Error(`unit ${unit} is masked`);

    const sysv = ctx.facts.init !== 'systemd';
    const ctl = (verb: string) => (sysv ? `service ${quote(p.name.replace(/\.service$/, ''))} ${verb.replace('reload-or-restart', 'reload')}` : `systemctl ${verb} ${quote(unit)}`);
    const changes: Change[] = [];
    const commands: Command[] = [];
    if (p.daemon_reload && !sysv) commands.push({ kind: 'shell', cmd: 'systemctl daemon-reload' });
    if (p.enabled !== undefined) {
      const isEnabled = cur.enabled === 'enabled' || cur.enabled === 'enabled-runtime' || cur.enabled === 'alias';
      if (cur.enabled === 'static' || cur.enabled === 'indirect' || cur.enabled === 'generated') {
        // Nothing to enable: such a unit is started by another unit or by its package.
      } else if (p.enabled !== isEnabled) {
        changes.push({ kind: 'service', target: unit, action: p.enabled ? 'enable' : 'disable', before: cur.enabled, after: p.enabled ? 'enabled' : 'disabled' });
        commands.push({
          kind: 'shell',
          cmd: sysv ? `update-rc.d ${quote(p.name)} ${p.enabled ? 'defaults' : 'disable'}` : `systemctl ${p.enabled ? 'enable' : 'disable'} ${quote(unit)}`,
        });
      }
    }
    const running = cur.active === 'active' || cur.active === 'activating' || cur.active === 'reloading';
    let newActive: 'active' | 'inactive' | undefined;
    switch (p.state) {
      case 'started':
        if (!running) {
          changes.push({ kind: 'service', target: unit, action: 'start', before: cur.active, after: 'active' });
          commands.push({ kind: 'shell', cmd: ctl('start') });
          newActive = 'active';
        }
        break;
      case 'stopped':
        if (running) {
          changes.push({ kind: 'service', target: unit, action: 'stop', before: cur.active, after: 'inactive' });
          commands.push({ kind: 'shell', cmd: ctl('stop') });
          newActive = 'inactive';
        }
        break;
      case 'restarted':
        changes.push({ kind: 'service', target: unit, action: running ? 'restart' : 'start' });
        commands.push({ kind: 'shell', cmd: ctl('restart') });
        newActive = 'active';
        break;
      case 'reloaded':
        // Reload keeps connections (HAProxy, Nginx); a stopped service is started instead.
        changes.push({ kind: 'service', target: unit, action: running ? 'reload' : 'start' });
        commands.push({ kind: 'shell', cmd: running ? ctl('reload-or-restart') : ctl('start') });
        newActive = 'active';
        break;
    }
    if (changes.length === 0) return { changes: [], commands: [], note };
    if (p.state === 'started' || p.state === 'restarted' || p.state === 'reloaded') {
      // A unit that fails right after start is a failed task, not a silent "changed".
      commands.push({
        kind: 'shell',
        cmd: sysv
          ? ':'
          : // Active, and still active a second later: a unit that crash-loops right after start fails the task.
            `ok=; for i in 1 2 3 4 5 6 7 8 9 10; do s=$(systemctl is-active ${quote(unit)}); [ "$s" = active ] && { ok=1; break; }; [ "$s" = failed ] && break; sleep 0.5; done; ` +
            `if [ -n "$ok" ]; then n=$(systemctl show -p NRestarts --value ${quote(unit)}); sleep 1; [ "$(systemctl is-active ${quote(unit)})" = active ] && [ "$(systemctl show -p NRestarts --value ${quote(unit)})" = "$n" ] && exit 0; fi; ` +
            `systemctl status --no-pager -n 20 ${quote(unit)} >&2; exit 1`,
        describe: `check ${unit} is active`,
      });
    }
    return {
      changes,
      commands,
      note,
      predict: (s) => {
        if (newActive) s.services.set(unit, newActive);
      },
    };
  },
};
