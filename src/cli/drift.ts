import { changeLines } from '../plan/plan.js';
import { exitCodeOf } from './exit-codes.js';
import { checkRun, type CheckRunOptions } from './load.js';
import { printOut } from './output.js';

/** `provision drift`: does every host match the playbook? 0 yes, 2 something drifted, 1 errors, 3 unreachable. */
export async function driftCommand(o: CheckRunOptions & { json?: boolean }): Promise<number> {
  const { res, plan } = await checkRun(o);
  const exitCode = exitCodeOf(res);
  const report = Object.fromEntries(
    Object.entries(plan.hosts).map(([h, p]) => [h, { drifted: p.tasks.length > 0, unreachable: p.unreachable, failed: p.failed, changes: changeLines(p) }]),
  );
  if (o.json) printOut(JSON.stringify({ kind: 'drift', exitCode, hosts: report }));
  else {
    for (const [h, r] of Object.entries(report)) {
      if (r.unreachable) printOut(`${h}: UNREACHABLE: ${r.unreachable}`);
      else if (r.failed) printOut(`${h}: ERROR: ${r.failed}`);
      else if (r.drifted) printOut(`${h}: DRIFTED\n${r.changes.map((c) => `  - ${c}`).join('\n')}`);
      else printOut(`${h}: in sync`);
    }
  }
  return exitCode;
}
