import { quote } from '../../util/quote.js';
import type { Command } from '../types.js';
import { normaliseMode } from './file-state.js';

export interface WriteOptions {
  mode?: string | number;
  owner?: string;
  group?: string;
  /** A command checking the new file before it replaces the live one; %s is the temporary file. */
  validate?: string;
  /** Keep the previous file as PATH.TIMESTAMP~ . */
  backup?: boolean;
  /** Create missing parent directories. */
  makeParents?: boolean;
}

export const VALIDATION_FAILED_EXIT = 97;

/**
 * Write content atomically: into a temporary file beside the target (same filesystem),
 * set attributes, validate, optionally back up the old file, then rename over it.
 * The content travels on stdin, never in argv. A failed validation leaves the live file untouched.
 */
export function writeFileCommand(path: string, content: string | Buffer, opts: WriteOptions = {}): Command {
  const p = quote(path);
  const mode = normaliseMode(opts.mode);
  const lines = [
    'set -e',
    opts.makeParents ? `mkdir -p "$(dirname ${p})"` : ':',
    `tmp=$(mktemp "$(dirname ${p})/.provision-XXXXXX")`,
    `trap 'rm -f "$tmp"' EXIT`,
    'cat > "$tmp"',
    // New files default to 0644 unless the existing file has a mode to keep.
    mode ? `chmod ${mode} "$tmp"` : `if [ -e ${p} ]; then chmod "$(stat -c %a ${p})" "$tmp"; else chmod 644 "$tmp"; fi`,
    opts.owner || opts.group
      ? `chown ${quote(`${opts.owner ?? ''}${opts.group ? ':' + opts.group : ''}`)} "$tmp"`
      : `if [ -e ${p} ]; then chown "$(stat -c %u:%g ${p})" "$tmp"; fi`,
  ];
  if (opts.validate) {
    const check = opts.validate.includes('%s') ? opts.validate.split('%s').join('"$tmp"') : `${opts.validate} "$tmp"`;
    lines.push(`if ! ( ${check} ) >&2; then exit ${VALIDATION_FAILED_EXIT}; fi`);
  }
  if (opts.backup) lines.push(`if [ -f ${p} ]; then cp -p ${p} ${p}."$(date +%Y%m%d%H%M%S)"~; fi`);
  lines.push(`mv -f "$tmp" ${p}`, 'trap - EXIT');
  const script = lines.join('\n');
  return {
    kind: 'shell',
    cmd: `sh -c ${quote(script)}`,
    stdin: content,
    describe: `write ${path}${opts.validate ? ` (validated by: ${opts.validate})` : ''}`,
  };
}
