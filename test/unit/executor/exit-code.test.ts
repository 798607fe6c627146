/**
 * The run's exit code (README "Exit codes"): 1 a task failed, 3 a host unreachable (and nothing
 * failed), 5 a host refused by `apply`, 2 something changed, 0 nothing did. Ignored failures never
 * raise it. Order of hosts
 * does not matter: every permutation of each table row gives the same code.
 */
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeFor } from '../../../src/executor/index.js';
import { emptyCounts, type HostCounts } from '../../../src/report/events.js';

const host = (c: Partial<HostCounts>): HostCounts => ({ ...emptyCounts(), ...c });
const ok = host({ ok: 5 });
const skipped = host({ skipped: 3 });
const changed = host({ ok: 2, changed: 1 });
const failed = host({ ok: 1, failed: 1 });
const ignored = host({ ok: 1, ignored: 1 });
const ignoredAndChanged = host({ ok: 1, changed: 2, ignored: 1 });
const unreachable = host({ unreachable: 1 });
/** Lost mid-run after changing something. */
const changedThenLost = host({ changed: 2, unreachable: 1 });
/** A task failed, then the connection was lost. */
const failedThenLost = host({ failed: 1, unreachable: 1 });
/** provision apply stopped it after some planned changes: the next one was not in the plan. */
const refusedAfterChanges = host({ changed: 3, refused: 1 });

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

describe('exitCodeFor', () => {
  it.each([
    ['no hosts', [], EXIT.OK],
    ['every host ok', [ok, ok], EXIT.OK],
    ['skipped tasks only', [skipped, ok], EXIT.OK],
    ['a change', [ok, changed], EXIT.CHANGED],
    ['an ignored failure alone is not a failure', [ignored], EXIT.OK],
    ['an ignored failure and a change: changed', [ignoredAndChanged, ok], EXIT.CHANGED],
    ['ignored failures on every host, one change', [ignored, ignored, changed], EXIT.CHANGED],
    ['a failure', [ok, failed], EXIT.FAILED],
    ['a failure beats a change', [changed, failed], EXIT.FAILED],
    ['a failure beats an ignored failure', [ignored, failed], EXIT.FAILED],
    ['an unreachable host', [ok, unreachable], EXIT.UNREACHABLE],
    ['unreachable beats changed', [changed, unreachable], EXIT.UNREACHABLE],
    ['unreachable beats an ignored failure', [ignored, unreachable], EXIT.UNREACHABLE],
    ['a host lost after changing: unreachable', [changedThenLost], EXIT.UNREACHABLE],
    ['failed beats unreachable', [unreachable, failed], EXIT.FAILED],
    ['failed then lost on one host: failed', [failedThenLost, ok], EXIT.FAILED],
    ['everything at once: failed', [ok, changed, ignored, unreachable, failed], EXIT.FAILED],
    ['everything but a failure: unreachable', [ok, changed, ignored, unreachable, skipped], EXIT.UNREACHABLE],
    ['apply: a refused host, the others changed: refused', [changed, refusedAfterChanges], EXIT.DRIFT_REFUSED],
    ['apply: refused beats ignored', [ignored, refusedAfterChanges], EXIT.DRIFT_REFUSED],
    ['apply: unreachable beats refused', [refusedAfterChanges, unreachable], EXIT.UNREACHABLE],
    ['apply: failed beats refused', [refusedAfterChanges, failed], EXIT.FAILED],
  ] as Array<[string, HostCounts[], number]>)('%s → its code, in any host order', (_name, hosts, code) => {
    for (const order of permutations(hosts)) expect(exitCodeFor(order), JSON.stringify(order)).toBe(code);
  });

  it('takes any iterable (the run passes a Map’s values)', () => {
    expect(exitCodeFor(new Map([['a', changed], ['b', ignored]]).values())).toBe(EXIT.CHANGED);
  });

  it('the documented numbers', () => {
    expect(EXIT).toMatchObject({ OK: 0, FAILED: 1, CHANGED: 2, UNREACHABLE: 3, INPUT: 4, DRIFT_REFUSED: 5 });
  });
});
