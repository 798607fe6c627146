import { existsSync, lstatSync, statSync } from 'node:fs';
import path from 'node:path';
import { PkiError } from './errors.js';

/*
 * Where the CA lives, and what is in its folder.
 *
 * Beside the inventory, as `<inventory>.pki/` (inventory/prod.yml → inventory/prod.pki/), for the same
 * reasons the secrets file is beside it (inventory/prod.secrets.yml): whoever runs that inventory must
 * use the same CA (a per-user ~/.config folder would give two operators two CAs, and every host a new
 * certificate whenever the other one ran), and it is backed up with the secrets it sits next to. It is
 * never committed by accident: the folder holds a `.gitignore` of `*` (git then ignores the folder, that
 * file included, whatever the project's own .gitignore says), and the project's .gitignore has `*.pki/`.
 *
 *   prod.pki/                 0700
 *     .gitignore              "*": the folder ignores itself
 *     README.txt              what this is, how to back it up, never commit it
 *     state.json              which CA signs, and which are trusted (see store.ts)
 *     lock                    while a run creates the CA or moves a rotation on (lock.ts)
 *     ca/<id>/key.pem         0600, refused if looser
 *     ca/<id>/cert.pem        0644
 *     work-XXXXXX/            0700, a run's private scratch (openssl's inputs and outputs), removed after use
 */

export const PKI_DIR_SUFFIX = '.pki';
export const STATE_FILE = 'state.json';
export const LOCK_FILE = 'lock';
export const CAS_DIR = 'ca';
export const WORK_PREFIX = 'work-';
export const KEY_FILE = 'key.pem';
export const CERT_FILE = 'cert.pem';

export const SELF_IGNORE = '# provision: this folder holds the internal CA\'s private keys; git must never see it.\n*\n';

export const README_TEXT = `This folder is provision's internal certificate authority for one inventory.

- ca/<id>/key.pem are CA private keys (mode 0600): whoever holds one can issue certificates
  that every host of this inventory trusts. Keep this folder with the secrets file beside it
  (<inventory>.secrets.yml): back both up together, encrypted; never commit them (the
  .gitignore in here keeps git away from this folder; keep '*.pki/' in the project's too).
- state.json says which CA signs new certificates and which are trusted during a rotation.
- Do not edit by hand. See docs/pki.md of provision: rotation, revocation, restoring a backup.
`;

/** Folders an inventory can name: a file (prod.yml) or an Ansible inventory directory. */
export interface InventoryLocation {
  /** The inventory file, or the folder of an Ansible inventory directory. */
  file: string;
}

/**
 * The CA folder of an inventory: `inventory/prod.yml` → `inventory/prod.pki`; an Ansible inventory
 * directory `inventories/prod/` → `inventories/prod.pki` (beside it, not inside, so that copying the
 * inventory directory to another project does not copy the keys with it).
 */
export function pkiDirFor(inventory: InventoryLocation): string {
  const file = path.resolve(inventory.file);
  const isDir = existsSync(file) && statSync(file).isDirectory();
  const base = isDir ? path.basename(file) : path.basename(file).replace(/\.(ya?ml|ini|cfg)$/i, '');
  return path.join(path.dirname(file), base + PKI_DIR_SUFFIX);
}

export const caDir = (pkiDir: string, id: string) => path.join(pkiDir, CAS_DIR, id);
export const caKeyFile = (pkiDir: string, id: string) => path.join(caDir(pkiDir, id), KEY_FILE);
export const caCertFile = (pkiDir: string, id: string) => path.join(caDir(pkiDir, id), CERT_FILE);

const octal = (mode: number) => (mode & 0o777).toString(8).padStart(4, '0');

/**
 * A CA key must be a plain file only its owner can read: like the secrets file, a looser mode is
 * refused rather than repaired, because the key may already have been read by someone else (the
 * operator decides whether to chmod it or to rotate the CA).
 */
export function assertPrivateFile(file: string, what: string): void {
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    throw new PkiError(`${what} ${file} is missing (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, 'restore the CA folder from its backup (docs/pki.md)');
  }
  if (!st.isFile()) throw new PkiError(`${what} ${file} is not a plain file (a link or something else)`, 'restore the CA folder from its backup (docs/pki.md)');
  if ((st.mode & 0o077) !== 0) {
    throw new PkiError(
      `${what} ${file} is readable by others (mode ${octal(st.mode)}, expected 0600)`,
      `if nobody else could have read it: chmod 600 ${file}; otherwise rotate the CA (docs/pki.md)`,
    );
  }
}

/**
 * The CA folder (and its ca/ subfolder) may not be writable by group or others: whoever can write
 * there could swap a CA certificate or state.json and have the run trust their CA.
 */
export function assertPrivateDir(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new PkiError(`the CA folder ${dir} is not a folder (a link or a file)`);
  if ((st.mode & 0o022) !== 0) {
    throw new PkiError(`the CA folder ${dir} can be written by others (mode ${octal(st.mode)}, expected 0700)`, `chmod 700 ${dir}`);
  }
}
