/**
 * A ufw change as one transaction on the host, with commit-confirm.
 *
 * The apply is ONE script: it takes a lock, backs up ufw's files, arms the rollback, then runs the
 * ufw commands. The rollback (fired by a timer when nobody confirms in time) takes the same lock,
 * so it waits for an apply in progress, and it first leaves a "due" mark, which makes the apply
 * stop before its next command and undo what it did, itself. The confirmation takes the lock too:
 * whoever holds it finishes its job whole, and the other sees the outcome in the transaction's
 * record ("ID STATE"). So the host ends applied, or rolled back, never half of each; a rollback is
 * never followed by more of the change; a confirmation never races a restore in progress.
 *
 * States: applying → applied → confirmed, or → rolling-back → rolled-back (rollback-failed when
 * the restore itself failed).
 */
import { STATE_DIR } from '../../facts/index.js';
import { quote, shellJoin } from '../../util/quote.js';

/** Where the transaction lives on the host. Tests point these at a scratch directory. */
export interface TransactionPaths {
  /** Holds the lock file and the transaction directory. */
  stateDir: string;
  etcUfw: string;
  defaultUfw: string;
  /** The directory whose presence means "systemd runs this host". */
  systemdDir: string;
  /** PATH for the scripts (ufw lives in /usr/sbin). */
  path: string;
  /** Name of the transient systemd timer/service of the rollback. */
  unit: string;
}

export const HOST_PATHS: TransactionPaths = {
  stateDir: STATE_DIR,
  etcUfw: '/etc/ufw',
  defaultUfw: '/etc/default/ufw',
  systemdDir: '/run/systemd/system',
  path: '/usr/sbin:/usr/bin:/sbin:/bin',
  unit: 'provision-ufw-rollback',
};

export const lockFile = (p: TransactionPaths) => `${p.stateDir}/ufw.lock`;
export const transactionDir = (p: TransactionPaths) => `${p.stateDir}/ufw-txn`;

/** How long an apply or a confirmation waits for the lock (a rollback in progress takes seconds). */
const LOCK_WAIT_SECONDS = 60;

/** A ufw command that takes longer than this is stopped (it counts as failed): no apply holds the lock for ever. */
const STEP_TIMEOUT_SECONDS = 120;

/** Exit codes of the apply script; its last stderr line says the rest. */
export const APPLY_EXIT = { applied: 0, failedUndone: 1, windowRanOutUndone: 2, undoFailed: 3, busy: 4 } as const;
/** Exit codes of the confirmation. */
export const CONFIRM_EXIT = { confirmed: 0, alreadyRolledBack: 3, busy: 4, unexpected: 5, rollbackFailed: 6 } as const;

/** Shell functions every script of the transaction shares. */
function library(p: TransactionPaths): string {
  const d = quote(transactionDir(p));
  const unit = quote(p.unit);
  return `PATH=${quote(p.path)}; export PATH
umask 077
D=${d}
LOCK=${quote(lockFile(p))}
UNIT=${unit}
systemd() { [ -d ${quote(p.systemdDir)} ] && command -v systemctl >/dev/null 2>&1; }
# The record is one line, "ID STATE", replaced in one rename.
record() { printf '%s %s\\n' "$ID" "$1" > "$D/record.new" && mv -f "$D/record.new" "$D/record"; }
recorded() { RID=; RSTATE=; if [ -f "$D/record" ]; then read -r RID RSTATE < "$D/record" || true; fi; }
# Back to the files as they were, and the firewall as it was (on with them, or off).
restore() {
  cp -a "$D/backup/ufw/." ${quote(p.etcUfw)}/ && cp -a "$D/backup/default-ufw" ${quote(p.defaultUfw)} || return 1
  if grep -q '^ENABLED=yes' ${quote(`${p.etcUfw}/ufw.conf`)}; then ufw --force enable; else ufw --force disable; fi
}
# Is a rollback still to come (timer armed, its service started, or the sleeper alive)?
scheduled() {
  if systemd; then
    systemctl is-active --quiet "$UNIT.timer" 2>/dev/null && return 0
    systemctl is-active --quiet "$UNIT.service" 2>/dev/null && return 0
  fi
  [ -s "$D/rollback.pid" ] && kill -0 "$(cat "$D/rollback.pid")" 2>/dev/null
}
# Stop the timer and a rollback that has started: only called with the lock held, so that
# rollback is at most waiting for the lock, never in the middle of a restore.
disarm() {
  if systemd; then
    systemctl stop "$UNIT.timer" "$UNIT.service" >/dev/null 2>&1
    systemctl reset-failed "$UNIT.timer" "$UNIT.service" >/dev/null 2>&1
  fi
  if [ -s "$D/rollback.pid" ]; then kill -TERM "-$(cat "$D/rollback.pid")" 2>/dev/null; rm -f "$D/rollback.pid"; fi
  true
}
log_tail() { tail -n 8 "$D/log" 2>/dev/null | tr '\\n' ' '; }
`;
}

/**
 * The rollback: run by the timer (`sh rollback.sh ID timer`) or at once by the module over the
 * run's existing connection (`sh rollback.sh ID now`) when a new login failed. Prints its outcome.
 */
function rollbackScript(p: TransactionPaths): string {
  return `${library(p)}
ID=$1
# An apply still running stops before its next command and undoes itself.
printf '%s\\n' "$ID" > "$D/due"
exec 9>>"$LOCK"
flock 9
recorded
if [ "$RID" != "$ID" ]; then echo "nothing to roll back: the record is another transaction's ($RID)"; exit 0; fi
case $RSTATE in
  applying|applied) ;;
  *) echo "nothing to roll back: $RSTATE"; exit 0 ;;
esac
record rolling-back
if restore >>"$D/log" 2>&1; then record rolled-back; R=rolled-back; else record rollback-failed; R=rollback-failed; fi
# From the module, not from the timer's own service (stopping that would end this script).
if [ "\${2:-}" = now ]; then disarm; fi
echo "$R"
[ "$R" = rolled-back ]
`;
}

export interface ApplyOptions {
  /** Random, per change: a rollback or confirmation acts only on the transaction it belongs to. */
  id: string;
  /** Commit-confirm window; 0: no rollback is armed (the apply still undoes itself on a failure). */
  windowSeconds: number;
  /** Each step is one command's argv (ufw …). */
  steps: string[][];
}

/** The apply script. Its last stderr line says what happened (the module's message). */
export function applyScript(o: ApplyOptions, p: TransactionPaths = HOST_PATHS): string {
  const total = o.steps.length;
  const w = o.windowSeconds;
  const arm = `if systemd && command -v systemd-run >/dev/null 2>&1; then
    # AccuracySec: a timer's default accuracy is a minute, so a 10 s window could last 70 s.
    systemd-run --quiet --on-active=${w}s --timer-property=AccuracySec=1s --unit="$UNIT" --description='provision: roll back an unconfirmed ufw change' /bin/sh "$D/rollback.sh" "$ID" timer || return 1
  else
    if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi
    # Its own session (so it can be stopped as a group), and not holding our lock (fd 9).
    nohup $S sh -c 'sleep "$1"; exec sh "$2" "$3" timer' rollback ${w} "$D/rollback.sh" "$ID" >/dev/null 2>&1 </dev/null 9>&- &
    echo $! > "$D/rollback.pid"
  fi`;
  return `${library(p)}
ID=${quote(o.id)}
TOTAL=${total}
say() { printf '%s\\n' "$*" >&2; }
# The change completes (or undoes itself) even if the connection that started it drops.
trap '' HUP PIPE
mkdir -p ${quote(p.stateDir)} || exit 1
exec 9>>"$LOCK"
if ! flock -w ${LOCK_WAIT_SECONDS} 9; then say "busy: another ufw change or its rollback has held $LOCK for ${LOCK_WAIT_SECONDS}s; nothing was changed"; exit ${APPLY_EXIT.busy}; fi
recorded
case $RSTATE in
  applying|applied|rolling-back)
    if scheduled; then
      say "refusing to start: an earlier ufw change ($RID, $RSTATE) is not confirmed and its rollback is still to come or under way; nothing was changed (run again once it has rolled back)"
      exit ${APPLY_EXIT.busy}
    fi ;;
esac
disarm
rm -rf "$D" && mkdir -p "$D/backup/ufw" || { say "cannot create $D; nothing was changed"; exit ${APPLY_EXIT.failedUndone}; }
if ! { cp -a ${quote(p.etcUfw)}/. "$D/backup/ufw/" && cp -a ${quote(p.defaultUfw)} "$D/backup/default-ufw"; }; then
  say "cannot back up ufw's files into $D; nothing was changed"; exit ${APPLY_EXIT.failedUndone}
fi
cat > "$D/rollback.sh" <<'PROVISION_UFW_ROLLBACK'
${rollbackScript(p)}PROVISION_UFW_ROLLBACK
record applying
${w > 0 ? `arm() {
  ${arm}
}
if ! arm; then record rolled-back; say "cannot schedule the rollback (systemd-run failed); nothing was changed"; exit ${APPLY_EXIT.failedUndone}; fi
` : ''}N=0
FAILED=
# One command; refused once the rollback is due (its timer fired): then nothing more is applied.
step() {
  if [ -s "$D/due" ]; then read -r DUE < "$D/due"; [ "$DUE" = "$ID" ] && return 2; fi
  timeout ${STEP_TIMEOUT_SECONDS} "$@" >>"$D/log" 2>&1
  CODE=$?
  if [ $CODE -eq 124 ]; then FAILED="'$*' timed out after ${STEP_TIMEOUT_SECONDS}s"; return 1; fi
  if [ $CODE -ne 0 ]; then FAILED="'$*' exited $CODE"; return 1; fi
  N=$((N + 1))
}
apply() {
${o.steps.map((s) => `  step ${shellJoin(s)} || return`).join('\n')}
}
apply
RC=$?
if [ $RC -eq 0 ]; then record applied; echo "applied $N of $TOTAL"; exit ${APPLY_EXIT.applied}; fi
# Undo now, still holding the lock: the host never keeps half a change, and the timer finds nothing to do.
record rolling-back
if restore >>"$D/log" 2>&1; then record rolled-back; UNDONE=yes; else record rollback-failed; UNDONE=no; fi
disarm
if [ $RC -eq 2 ]; then
  WHAT="rolled back: the commit-confirm window (${w}s) ran out after $N of $TOTAL ufw commands, so the rest was not applied"
else
  WHAT="$FAILED (after $N of $TOTAL ufw commands): $(log_tail)"
fi
if [ $UNDONE = yes ]; then say "$WHAT; the previous ufw files and state are restored"; [ $RC -eq 2 ] && exit ${APPLY_EXIT.windowRanOutUndone}; exit ${APPLY_EXIT.failedUndone}; fi
say "$WHAT; restoring the previous ufw files FAILED ($(log_tail)): check the firewall from the host's console"
exit ${APPLY_EXIT.undoFailed}
`;
}

/** Confirms the change: the rollback is disarmed, or, if it already ran, says so (exit 3). */
export function confirmScript(id: string, p: TransactionPaths = HOST_PATHS): string {
  return `${library(p)}
ID=${quote(id)}
# The module reads stdout only.
say() { printf '%s\\n' "$*"; }
exec 9>>"$LOCK"
# A rollback under way holds the lock: wait for it, then report what it did.
if ! flock -w ${LOCK_WAIT_SECONDS} 9; then say "busy: $LOCK held for ${LOCK_WAIT_SECONDS}s"; exit ${CONFIRM_EXIT.busy}; fi
recorded
if [ "$RID" != "$ID" ]; then say "the transaction record is not this change's (found: $RID $RSTATE)"; exit ${CONFIRM_EXIT.unexpected}; fi
case $RSTATE in
  applied) record confirmed; disarm; echo confirmed; exit ${CONFIRM_EXIT.confirmed} ;;
  rolled-back) disarm; say "rolled back"; exit ${CONFIRM_EXIT.alreadyRolledBack} ;;
  rollback-failed) disarm; say "the rollback failed: $(log_tail)"; exit ${CONFIRM_EXIT.rollbackFailed} ;;
  *) say "unexpected state $RSTATE"; exit ${CONFIRM_EXIT.unexpected} ;;
esac
`;
}

/** Rolls the change back now (over the run's existing connection), under the same lock. */
export function rollbackNowScript(id: string, p: TransactionPaths = HOST_PATHS): string {
  return `sh ${quote(`${transactionDir(p)}/rollback.sh`)} ${quote(id)} now`;
}

/** A script as one command line for any login shell (the scripts are POSIX sh). */
export const asCommand = (script: string): string => `sh -c ${quote(script)}`;
