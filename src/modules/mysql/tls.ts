/**
 * Where a database host keeps its TLS files, and the TLS part of CHANGE MASTER TO: one place for the
 * mysql role (server config, certificate), the replication module and `provision db` (switchover),
 * so that a replica pointed by either is the same to the next converge.
 *
 * The server's certificate and key are one file (internal_tls: certificate, then key), owned by mysql
 * and 0600, in a folder only root and mysql can enter: mariadbd reads the certificate part for
 * ssl_cert and the key part for ssl_key. The CA bundle is 0644 in a folder of its own that any user
 * can read: replication (MASTER_SSL_CA) and the app (DB_SSL_CA, read by the app's user) verify with it.
 */

/** The folder of the server's certificate and key (0750 root:mysql). */
export const DB_TLS_DIR = '/etc/mysql/tls';
/** The server's certificate then its key, one 0600 mysql:mysql file. */
export const DB_CERT_FILE = `${DB_TLS_DIR}/server.pem`;
/** The internal CA bundle database clients verify servers with (0644): replication and the app. */
export const DB_CA_FILE = '/etc/provision/tls/db-ca.pem';

/** The TLS wanted of a replica's connection to its source: verified against `ca`. */
export interface SourceTls {
  /** The CA bundle on the replica (MASTER_SSL_CA). */
  ca: string;
}

/**
 * CHANGE MASTER TO's TLS options (MariaDB's names; the caller renames them for MySQL 8): TLS on, the
 * source's certificate checked against the CA and against the host name or address the replica
 * connects to (MASTER_SSL_VERIFY_SERVER_CERT; our certificates carry both as SANs).
 */
export function sourceTlsFields(tls: SourceTls, sqlString: (s: string) => string): string[] {
  return ['MASTER_SSL = 1', `MASTER_SSL_CA = ${sqlString(tls.ca)}`, 'MASTER_SSL_VERIFY_SERVER_CERT = 1'];
}

/**
 * The name every database certificate of an inventory carries besides its host's own name and address:
 * `db.<inventory name>.internal`. Behind the web servers' database endpoint any database server may
 * answer the app, which dials a loopback address no certificate names: a client that checks the name
 * (mysql2 with `verifyIdentity`) checks this one (docs/database.md, "What is verified where"). The
 * inventory name made a DNS label (lower case; anything but letters, digits and hyphens a hyphen).
 */
export function databaseServiceName(inventoryName: string): string {
  const label = inventoryName.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return `db.${label || 'site'}.internal`;
}
