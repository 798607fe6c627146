import { aptModule } from './apt.js';
import { commandModule } from './command.js';
import { copyModule } from './copy.js';
import { fileModule } from './file.js';
import { groupModule } from './group.js';
import { lineinfileModule } from './lineinfile.js';
import { mysqlAccountsModule, mysqlDbModule, mysqlQueryModule, mysqlReplicationModule, mysqlUserModule } from './mysql.js';
import { serviceModule } from './service.js';
import { templateModule } from './template.js';
import { ufwModule } from './ufw/index.js';
import { userModule } from './user.js';
import { internalTlsModule } from '../pki/module.js';
import { peerFileModule } from './peer-file.js';
import type { ModuleDef, Task } from './contract.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const modules = new Map<string, ModuleDef<any>>();

export function registerModule<P>(def: ModuleDef<P>): void {
  modules.set(def.name, def);
}

export function getModule(name: string): ModuleDef<unknown> | undefined {
  return modules.get(name);
}

export function moduleNames(): string[] {
  return [...modules.keys()].sort();
}

export interface TaskOptions {
  notify?: string | string[];
  tags?: string[];
  when?: boolean;
  ignoreErrors?: boolean;
}

/** A typed task builder for a module: `apt('install nginx', { packages: ['nginx'] }, { notify: 'reload nginx' })`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function taskBuilder<Input>(def: ModuleDef<any>) {
  return (name: string, params: Input, opts: TaskOptions = {}): Task => ({
    name,
    module: def.name,
    params,
    notify: opts.notify === undefined ? undefined : Array.isArray(opts.notify) ? opts.notify : [opts.notify],
    tags: opts.tags,
    when: opts.when,
    ignoreErrors: opts.ignoreErrors,
  });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const builtins: ModuleDef<any>[] = [
  aptModule,
  commandModule,
  copyModule,
  fileModule,
  groupModule,
  lineinfileModule,
  mysqlAccountsModule,
  mysqlDbModule,
  mysqlQueryModule,
  mysqlReplicationModule,
  mysqlUserModule,
  serviceModule,
  templateModule,
  ufwModule,
  userModule,
  internalTlsModule,
  peerFileModule,
];
builtins.forEach(registerModule);
