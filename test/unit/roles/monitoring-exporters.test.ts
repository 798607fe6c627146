/**
 * The monitoring role's exporters without a host: the mysqld exporter's drop-in (it must start only
 * once its credentials exist) comes before the package that would start it, the systemd reload
 * before any restart, and the credentials path goes into the unit only when it is a plain one.
 */
import { describe, expect, it } from 'vitest';
import { MYSQLD_EXPORTER_DROPIN, role as monitoring } from '../../../src/roles/monitoring/index.ts';
import { problemsOf, roleTasksFor, siteHost, SPLIT_SITE, SITE_SECRETS, THREE_HOST_SITE } from './helpers.ts';

describe('monitoring: the mysqld exporter never starts unconfigured', () => {
  it('on a database host the drop-in is written before the exporters are installed, and names the credentials file', () => {
    const tasks = roleTasksFor(monitoring, SPLIT_SITE, 'db-01', { mysqld_exporter_my_cnf: '/etc/prometheus/my.cnf' });
    const dropIn = tasks.findIndex((t) => (t.params as { dest?: string }).dest === MYSQLD_EXPORTER_DROPIN);
    const install = tasks.findIndex((t) => t.module === 'apt');
    expect(dropIn).toBeGreaterThanOrEqual(0);
    expect(dropIn).toBeLessThan(install);
    expect((tasks[dropIn]!.params as { content: string }).content).toMatch(/^\[Unit\]\nConditionPathExists=\/etc\/prometheus\/my\.cnf\n$/m);
    expect(tasks[dropIn]!.notify).toEqual(['systemd reads the mysqld exporter drop-in']);
    // Predicted as it now is after install: not failed, so nothing to clear; started by the role.
    const clear = tasks.find((t) => t.name === 'clear a failed prometheus-mysqld-exporter (start limit)')!;
    expect(clear.params).toMatchObject({ onlyif: 'systemctl is-failed --quiet prometheus-mysqld-exporter' });
  });

  it('hosts without a database get no drop-in', () => {
    for (const name of ['lb-01', 'web-01']) {
      const tasks = roleTasksFor(monitoring, SPLIT_SITE, name);
      expect(tasks.some((t) => (t.params as { dest?: string }).dest === MYSQLD_EXPORTER_DROPIN), name).toBe(false);
    }
  });

  it('the systemd reload is the first handler: a restart after a new drop-in reads it', () => {
    const handlers = roleTasksFor(monitoring, THREE_HOST_SITE, 'web-02', {}, 'handlers').map((t) => t.name);
    expect(handlers[0]).toBe('systemd reads the mysqld exporter drop-in');
    expect(handlers).toContain('restart prometheus-mysqld-exporter');
  });

  it.each(['/etc/../x.cnf', '/etc/./x.cnf', '/etc/prometheus/', '/etc/my cnf', '/etc/%n.cnf', 'etc/x.cnf', '/etc//x.cnf'])(
    'refuses mysqld_exporter_my_cnf %j (it goes into a unit file)',
    (p) => {
      const problems = problemsOf(monitoring, siteHost(SPLIT_SITE, 'db-01'), { ...SITE_SECRETS, mysqld_exporter_my_cnf: p });
      expect(problems.join('\n')).toContain('mysqld_exporter_my_cnf: must be an absolute path, normalized');
    },
  );
});
