import { createTwoFilesPatch } from 'diff';
import type { Change } from '../modules/index.js';

/** A unified diff of a content change, or a one-line summary for anything else. (Changes reach the report masked.) */
export function renderChange(c: Change): string {
  if (c.sensitive) return `${c.kind} ${c.target}: ${c.action} (content hidden: sensitive)`;
  if (c.before !== undefined && c.after !== undefined && c.kind === 'file' && (c.before.includes('\n') || c.after.includes('\n') || c.action !== 'create')) {
    const patch = createTwoFilesPatch(`${c.target} (before)`, `${c.target} (after)`, c.before, c.after, '', '', { context: 3 });
    // Drop the "=====" header line the library adds; keep ---/+++ and hunks.
    return patch.split('\n').filter((l) => !/^=+$/.test(l)).join('\n').trimEnd();
  }
  return `${c.kind} ${c.target}: ${c.action}`;
}
