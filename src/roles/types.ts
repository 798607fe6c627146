import type { Facts } from '../facts/index.js';
import type { Host, Inventory } from '../inventory/index.js';
import type { Task } from '../modules/index.js';

export interface RoleContext {
  host: Host;
  facts: Facts;
  /** The role's defaults, overridden by inventory vars (all < groups < host), then by play vars. */
  vars: Record<string, unknown>;
  inventory: Inventory;
  /** Hosts of a group (empty when the group does not exist). */
  hostsIn(group: string): Host[];
  /** Absolute path of a file in this role's templates/ or files/ folder. */
  file(relative: string): string;
}

export interface RoleDef {
  name: string;
  description: string;
  /** Every var the role reads, with its production default. Inventory vars override them. */
  defaults: Record<string, unknown>;
  /** Roles this one needs to have run earlier on the host (checked, not run implicitly). */
  tasks(ctx: RoleContext): Task[];
  handlers?(ctx: RoleContext): Task[];
  /** Checks vars before any connection; returns problems as "var: what is wrong". */
  validate?(vars: Record<string, unknown>, host: Host): string[];
}
