import { quote } from '../../util/quote.js';
import type { Command } from '../types.js';
import { normaliseMode, type Attributes } from './file-state.js';
import { asWriter, enterDirectoryScript, enterParentScript, splitPath } from './safe-path.js';

export { PATH_REFUSED_EXIT } from './safe-path.js';

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
  /** Leave an existing file as it is (create only). */
  onlyIfAbsent?: boolean;
}

export const VALIDATION_FAILED_EXIT = 97;

/** `owner:group`, `owner` or `:group` for chown; undefined when neither is given. */
function ownership(owner: string | undefined, group: string | undefined): string | undefined {
  if (!owner && !group) return undefined;
  return `${owner ?? ''}${group ? ':' + group : ''}`;
}

function shellCommand(script: string, describe: string, stdin?: string | Buffer): Command {
  return { kind: 'shell', cmd: `sh -c ${quote(script)}`, stdin, describe };
}

/**
 * Write content atomically: into a temporary file in the same directory, set attributes,
 * validate, flush it to disk, optionally back up the old file, rename it over the old one and flush
 * the directory (a crash right after the run leaves the old file or the new one, never an empty one).
 * The content travels on stdin, never in argv. A failed validation leaves the live file untouched.
 *
 * The directory is reached by safe-path's walk and the file is written from inside it, by root
 * where only root can change the directory, by its owner where that is a user (see safe-path.ts).
 */
export function writeFileCommand(path: string, content: string | Buffer, opts: WriteOptions = {}): Command {
  const n = quote(splitPath(path).name);
  const mode = normaliseMode(opts.mode);
  const chown = ownership(opts.owner, opts.group);
  const lines = [
    'set -eu',
    'umask 077',
    ...(opts.onlyIfAbsent ? [`if [ -e ${n} ] || [ -L ${n} ]; then exit 0; fi`] : []),
    'tmp=$(mktemp ./.provision-XXXXXX)',
    `trap 'rm -f -- "$tmp"' EXIT`,
    'cat > "$tmp"',
    // New files default to 0644 unless the existing file has a mode to keep.
    mode ? `chmod ${mode} -- "$tmp"` : `if [ -f ${n} ] && [ ! -L ${n} ]; then chmod "$(stat -c %a -- ${n})" -- "$tmp"; else chmod 644 -- "$tmp"; fi`,
    // Root gives the file its owner; a user writing in their own directory can only choose among their groups.
    'if [ "${writer_is_root:-0}" = 1 ]; then',
    chown ? `  chown -h -- ${quote(chown)} "$tmp"` : `  if [ -f ${n} ] && [ ! -L ${n} ]; then chown -h -- "$(stat -c %u:%g -- ${n})" "$tmp"; fi`,
    ...(opts.group ? ['else', `  chgrp -h -- ${quote(opts.group)} "$tmp"`] : []),
    'fi',
  ];
  if (opts.validate) {
    // Validators get an absolute name (some resolve relative ones against their own directories).
    lines.push('checked="$(pwd -P)/${tmp#./}"');
    const check = opts.validate.includes('%s') ? opts.validate.split('%s').join('"$checked"') : `${opts.validate} "$checked"`;
    lines.push(`if ! ( ${check} ) >&2; then exit ${VALIDATION_FAILED_EXIT}; fi`);
  }
  lines.push('sync -- "$tmp"');
  if (opts.backup) {
    lines.push(
      `if [ -f ${n} ] && [ ! -L ${n} ]; then backup=$(mktemp ./.provision-XXXXXX); cp -p -- ${n} "$backup"; mv -f -T -- "$backup" ${n}."$(date +%Y%m%d%H%M%S)"~; fi`,
    );
  }
  lines.push(`mv -f -T -- "$tmp" ${n}`, 'trap - EXIT', 'sync -- .');
  const script = [enterParentScript(path, opts.makeParents), asWriter(lines.join('\n'), opts.owner)].join('\n');
  return shellCommand(script, `write ${path}${opts.validate ? ` (validated by: ${opts.validate})` : ''}`, content);
}

/**
 * Set mode/owner/group of an existing path without following a link anyone could have put there.
 * A directory is changed from inside it (`chmod 700 .` cannot be redirected). A file is changed by
 * root where only root can change its directory, and by the directory's owner where that is a user:
 * a file there that is not theirs yet becomes theirs by being copied (they cannot chown it).
 */
export function setAttributesCommand(path: string, kind: 'file' | 'directory', want: Attributes): Command {
  const mode = normaliseMode(want.mode);
  const chown = ownership(want.owner, want.group);
  const describe = `set ${[mode && `mode ${mode}`, chown && `owner ${chown}`].filter(Boolean).join(', ')} on ${path}`;
  if (kind === 'directory') {
    const script = [enterDirectoryScript(path), ...(mode ? [`chmod ${mode} .`] : []), ...(chown ? [`chown -h -- ${quote(chown)} .`] : [])].join('\n');
    return shellCommand(script, describe);
  }
  const n = quote(splitPath(path).name);
  const asOwner = [
    'set -eu',
    `if [ ! -O ${n} ]; then`,
    '  tmp=$(mktemp ./.provision-XXXXXX)',
    `  trap 'rm -f -- "$tmp"' EXIT`,
    `  cat -- ${n} > "$tmp"`,
    `  chmod "$(stat -c %a -- ${n})" -- "$tmp"`,
    '  sync -- "$tmp"',
    `  mv -f -T -- "$tmp" ${n}`,
    '  trap - EXIT',
    'fi',
    ...(mode ? [`chmod ${mode} -- ${n}`] : []),
    ...(want.group ? [`chgrp -h -- ${quote(want.group)} ${n}`] : []),
  ].join('\n');
  const script = [
    enterParentScript(path),
    'case $(controller) in',
    `  user:*) ${asWriter(asOwner, want.owner)}; exit ;;`,
    // In a sticky directory (/tmp) only the owner of an entry can rename it: root's entries stay put.
    `  sticky) [ "$(stat -c %u -- "$name")" -eq 0 ] || refuse "$walked/$name belongs to $(stat -c %U -- "$name") in a directory everyone can write to" ;;`,
    `  shared) refuse "$(pwd -P) can be changed by $(describe_controller shared): refusing to change $name in it as root" ;;`,
    'esac',
    `[ -f "$name" ] && [ ! -L "$name" ] || fail "$walked/$name is not a regular file"`,
    ...(mode ? [`chmod ${mode} -- "$name"`] : []),
    ...(chown ? [`chown -h -- ${quote(chown)} "$name"`] : []),
  ].join('\n');
  return shellCommand(script, describe);
}

/** Make a directory (and missing parents) and give it its attributes, from inside it (see setAttributesCommand). */
export function makeDirectoryCommand(path: string, want: Attributes): Command {
  const mode = normaliseMode(want.mode);
  const chown = ownership(want.owner, want.group);
  const script = [enterDirectoryScript(path, true), ...(mode ? [`chmod ${mode} .`] : []), ...(chown ? [`chown -h -- ${quote(chown)} .`] : [])].join('\n');
  return shellCommand(script, `create directory ${path}`);
}

/** Remove a path (recursively) from inside its directory. rm never follows the links it removes. */
export function removeCommand(path: string): Command {
  return shellCommand([enterParentScript(path), 'rm -rf -- "$name"'].join('\n'), `remove ${path}`);
}

/** Point a symbolic link at `target`, replacing a file or link but never a directory. */
export function linkCommand(path: string, target: string): Command {
  const body = `ln -sfn -T -- ${quote(target)} ${quote(splitPath(path).name)}`;
  return shellCommand([enterParentScript(path), asWriter(body)].join('\n'), `link ${path} → ${target}`);
}
