/**
 * The paths provision itself owns on a managed host: read by the facts, written by the executor and
 * by the ufw transaction. One place, so a change of layout is one edit (and a test finds them all).
 */

/** provision's own state on the host (root-only). */
export const STATE_DIR = '/var/lib/provision';

/**
 * Handlers notified by a run that did not get to run them, one name per line: written before a
 * notifying task's commands run, cleared once the handler ran; the next run owes what is left.
 */
export const PENDING_HANDLERS_FILE = `${STATE_DIR}/pending-handlers`;

/** The ufw transaction's lock (shared by apply, rollback and confirmation). Tests pass a scratch state dir. */
export const ufwLockFile = (stateDir: string = STATE_DIR) => `${stateDir}/ufw.lock`;

/** The ufw transaction's directory: the backup of ufw's files, its record, the rollback's scripts. */
export const ufwTransactionDir = (stateDir: string = STATE_DIR) => `${stateDir}/ufw-txn`;

/**
 * The last run's state read of this host, as the script that reads it (root-only, 0600): run again in
 * the facts' round trip, its answers count only when the script is the one this run would send.
 */
export const STATE_READ_FILE = `${STATE_DIR}/state-read`;
