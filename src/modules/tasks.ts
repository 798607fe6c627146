// Typed task builders for every built-in module, made once: roles import these rather than each
// building its own with taskBuilder.
import { aptModule, type AptParams } from './apt.js';
import { commandModule, type CommandParams } from './command.js';
import { copyModule, type CopyParams } from './copy.js';
import { fileModule, type FileParams } from './file.js';
import { groupModule, type GroupParams } from './group.js';
import { lineinfileModule, type LineinfileParams } from './lineinfile.js';
import {
  mysqlAccountsModule,
  mysqlDbModule,
  mysqlQueryModule,
  mysqlReplicationModule,
  mysqlTopologyModule,
  mysqlUserModule,
  type MysqlAccountsParams,
  type MysqlDbParams,
  type MysqlQueryParams,
  type MysqlReplicationParams,
  type MysqlTopologyParams,
  type MysqlUserParams,
} from './mysql.js';
import { taskBuilder } from './registry.js';
import { serviceModule, type ServiceParams } from './service.js';
import { templateModule, type TemplateParams } from './template.js';
import { ufwModule, type UfwParams } from './ufw/index.js';
import { userModule, type UserParams } from './user.js';
import { internalTlsModule, type InternalTlsParams } from './internal-tls.js';
import { peerFileModule, type PeerFileParams } from './peer-file.js';

export const apt = taskBuilder<AptParams>(aptModule);
export const command = taskBuilder<CommandParams>(commandModule);
export const copy = taskBuilder<CopyParams>(copyModule);
export const file = taskBuilder<FileParams>(fileModule);
export const group = taskBuilder<GroupParams>(groupModule);
export const lineinfile = taskBuilder<LineinfileParams>(lineinfileModule);
export const service = taskBuilder<ServiceParams>(serviceModule);
export const template = taskBuilder<TemplateParams>(templateModule);
export const ufw = taskBuilder<UfwParams>(ufwModule);
export const user = taskBuilder<UserParams>(userModule);
export const mysqlAccounts = taskBuilder<MysqlAccountsParams>(mysqlAccountsModule);
export const mysqlDb = taskBuilder<MysqlDbParams>(mysqlDbModule);
export const mysqlQuery = taskBuilder<MysqlQueryParams>(mysqlQueryModule);
export const mysqlReplication = taskBuilder<MysqlReplicationParams>(mysqlReplicationModule);
export const mysqlTopology = taskBuilder<MysqlTopologyParams>(mysqlTopologyModule);
export const mysqlUser = taskBuilder<MysqlUserParams>(mysqlUserModule);
export const internalTls = taskBuilder<InternalTlsParams>(internalTlsModule);
export const peerFile = taskBuilder<PeerFileParams>(peerFileModule);
