import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { INVENTORY_DIR } from '../util/paths.ts';

/** The secrets the lab inventory names with !secret. */
export const LAB_SECRET_NAMES = ['mysql_replication_password', 'mysql_app_password', 'mysql_exporter_password'];

export const LAB_SECRETS_FILE = path.join(INVENTORY_DIR, 'lab.secrets.yml');

/**
 * The lab's secrets are made once, at random, into inventory/lab.secrets.yml (mode 0600, never
 * committed), so `provision --inventory lab` works right after `lab up` with no secret in the repo.
 * Names missing from an existing file are added; existing values are kept.
 */
export function ensureLabSecrets(file = LAB_SECRETS_FILE): string {
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const missing = LAB_SECRET_NAMES.filter((n) => !new RegExp(`^${n}:`, 'm').test(existing));
  if (missing.length) {
    const lines = missing.map((n) => `${n}: "${randomBytes(18).toString('base64url')}"`).join('\n');
    writeFileSync(file, (existing && !existing.endsWith('\n') ? existing + '\n' : existing) + lines + '\n', { mode: 0o600 });
  }
  chmodSync(file, 0o600);
  return file;
}
