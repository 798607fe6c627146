/**
 * Shell helpers for writing as root where someone else can change the path under our feet.
 *
 * Root following a path by its name is unsafe wherever a non-root user can change an entry of it:
 * a user whose ~/.ssh becomes a link to /etc/sudoers.d between our read and our write gets
 * root's chmod, chown and authorized_keys into that directory. So no write, chmod or chown here
 * goes through a name a user controls:
 *
 * - `enter DIR` walks to DIR one component at a time from `/`. A symbolic link is followed only
 *   when it lies in a directory only root can change (`/var/run → /run`); one in a directory a user
 *   or a group can change is refused. After each step, the `..` of where we arrived must be the
 *   directory we came from, so a directory swapped for a link between the look and the step is
 *   refused too. The shell's working directory then pins the directory: every later operation uses
 *   names relative to it, and no rename of its ancestors can redirect them.
 * - `as_writer SCRIPT OWNER` runs SCRIPT in the pinned directory as root when only root can change
 *   its entries (or it is sticky, like /tmp: nobody can rename root's entries there), and as the
 *   directory's owner when that is a user (setpriv: the kernel's own permission checks then apply,
 *   whatever the user swaps in meanwhile). A directory that a group or everyone can change without
 *   a sticky bit, or a file there meant for another owner than the directory's, is refused.
 *
 * The check and the operation cannot be separated: the check is the walk, the operation happens
 * from where the walk ended.
 */
import { quote } from '../../util/quote.js';

/** Exit code of a script that refused an unsafe path (reported as a failed task naming the reason). */
export const PATH_REFUSED_EXIT = 95;

const PRELUDE = `set -eu
set -f
unset CDPATH
refuse() { printf 'provision refused: %s\\n' "$*" >&2; exit ${PATH_REFUSED_EXIT}; }
fail() { printf '%s\\n' "$*" >&2; exit 1; }
# Who can change the entries of the current directory: root, shared (a group or everyone),
# sticky (everyone, but only its own entries) or user:UID (its owner).
controller() {
  set -- $(stat -c '%u %g %a' .)
  m=$((0$3))
  if [ $((m & 2)) -ne 0 ] || { [ $((m & 16)) -ne 0 ] && [ "$2" -ne 0 ]; }; then
    if [ $((m & 512)) -ne 0 ]; then echo sticky; else echo shared; fi
  elif [ "$1" -eq 0 ]; then echo root
  else echo "user:$1"; fi
}
describe_controller() {
  case $1 in
    shared) printf 'group %s or everyone' "$(stat -c %G .)" ;;
    sticky) printf 'everyone' ;;
    *) printf 'user %s' "$(stat -c %U .)" ;;
  esac
}
# enter DIR MKDIR: cd into the absolute directory DIR (see above); MKDIR=1 makes missing directories.
# No process per step: fd 3 holds the directory we leave, and test's -ef compares it with the ".."
# of where we arrive (through /proc/self/fd, which is the shell's own: [ is a builtin).
enter() {
  rest=\${1#/} mk=$2 hops=0 walked=
  [ -d /proc/self/fd ] || fail "provision needs /proc on the host to write files safely"
  cd /
  while [ -n "$rest" ]; do
    c=\${rest%%/*}
    case $rest in */*) rest=\${rest#*/} ;; *) rest= ;; esac
    case $c in
      '' | .) continue ;;
      ..) cd -P ..; walked=\${walked%/*}; continue ;;
    esac
    if [ -L "$c" ]; then
      ctl=$(controller)
      [ "$ctl" = root ] || refuse "$walked/$c is a symbolic link in a directory that $(describe_controller "$ctl") can change"
      hops=$((hops + 1))
      [ "$hops" -le 40 ] || refuse "too many levels of symbolic links in $1"
      t=$(readlink -- "$c")
      case $t in /*) cd /; walked= ;; esac
      rest=\${t#/}\${rest:+/$rest}
      continue
    fi
    if [ "$mk" = 1 ] && [ ! -e "$c" ]; then
      # In a user's directory, the user makes it (theirs, as if they had); elsewhere root does.
      case $(controller) in user:*) as_owner mkdir -p -- "$c" ;; *) mkdir -p -- "$c" ;; esac
    fi
    exec 3<.
    cd -P -- "$c" 2>/dev/null || fail "$walked/$c: no such directory"
    # ".." is where we came from, unless the name was swapped for a link after we looked.
    [ /proc/self/fd/3 -ef .. ] || refuse "$walked/$c was replaced (by a link?) while provision entered it"
    walked=$walked/$c
  done
  exec 3<&-
}
# as_owner CMD…: run CMD as the owner of the current directory (which is not root).
as_owner() {
  uid=$(stat -c %u .)
  # A run that is that user already (no become) just runs it: only root may switch users.
  if [ "$uid" = "$(id -u)" ]; then "$@"; return; fi
  owner=$(stat -c %U .)
  [ "$owner" != UNKNOWN ] || refuse "$(pwd -P) belongs to uid $uid, which has no account: refusing to write in it"
  setpriv --reuid="$uid" --regid="$(id -g -- "$owner")" --init-groups -- "$@"
}
# as_writer SCRIPT OWNER: run SCRIPT here as root or as this directory's owner (see above).
as_writer() {
  ctl=$(controller)
  case $ctl in
    root | sticky) writer_is_root=1; eval "$1" ;;
    shared) refuse "$(pwd -P) can be changed by $(describe_controller "$ctl"): refusing to write in it as root" ;;
    user:*)
      if [ -n "$2" ] && [ "$(id -u -- "$2")" != "\${ctl#user:}" ]; then
        refuse "$(pwd -P) belongs to user $(stat -c %U .), who can swap anything in it: a file there is written as that user, not given to $2"
      fi
      as_owner sh -c "$1" ;;
  esac
}`;

/** The prelude plus `enter`ing the directory that holds `path`; `$name` is then its last component. */
export function enterParentScript(path: string, makeParents = false): string {
  const { dir, name } = splitPath(path);
  return [PRELUDE, `enter ${quote(dir)} ${makeParents ? 1 : 0}`, `name=${quote(name)}`].join('\n');
}

/** The prelude plus `enter`ing `path` itself (a directory). */
export function enterDirectoryScript(path: string, makeMissing = false): string {
  return [PRELUDE, `enter ${quote(path)} ${makeMissing ? 1 : 0}`].join('\n');
}

/** `as_writer` with a script of our own and the owner the result must have ('' = whoever writes). */
export function asWriter(script: string, owner?: string): string {
  return `as_writer ${quote(script)} ${quote(owner ?? '')}`;
}

export function splitPath(path: string): { dir: string; name: string } {
  const trimmed = path.replace(/\/+$/, '');
  const i = trimmed.lastIndexOf('/');
  const name = trimmed.slice(i + 1);
  if (!trimmed.startsWith('/') || name === '' || name === '.' || name === '..') throw new Error(`${path}: not an absolute path to a file`);
  return { dir: trimmed.slice(0, i) || '/', name };
}
