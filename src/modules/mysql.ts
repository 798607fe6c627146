/**
 * MySQL / MariaDB modules: databases, users with exact privileges, replication, guarded SQL, and
 * the accounts a role made. One file per job under mysql/; this is their public surface.
 */
export { account, flavorOf, nativePasswordHash, parseRecords, parseRows, pickSelect, sqlIdent, sqlString, type MysqlFlavor } from './mysql/client.js';
export { mysqlDbModule, type MysqlDbParams } from './mysql/db.js';
export { mysqlUserModule, type MysqlUserParams } from './mysql/user.js';
export { mysqlQueryModule, type MysqlQueryParams } from './mysql/query.js';
export { mysqlReplicationModule, parseReplicaStatus, type MysqlReplicationParams, type ReplicaStatus } from './mysql/replication.js';
export { mysqlAccountsModule, BOOKKEEPING_TABLE, type MysqlAccountsParams } from './mysql/accounts.js';
export { mysqlTopologyModule, parseRecord, PRIMARY_RECORD, primaryRecord, type MysqlTopologyParams, type PrimaryRecord } from './mysql/topology.js';
