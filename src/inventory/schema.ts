import { z } from 'zod';

/** Connection settings: allowed in `defaults`, on a group and on a host. The nearest wins. */
export const connectionFields = {
  user: z.string().min(1).optional(),
  port: z.number().int().min(1).max(65535).optional(),
  identity_file: z.string().min(1).optional(),
  /** true: use $SSH_AUTH_SOCK; a string: that agent socket path. */
  ssh_agent: z.union([z.boolean(), z.string().min(1)]).optional(),
  known_hosts: z.string().min(1).optional(),
  /** Record keys of hosts never seen before (like OpenSSH accept-new). A changed key is always refused. */
  accept_new_host_keys: z.boolean().optional(),
  /** ProxyJump: an inventory host name, or [user@]address[:port]. */
  jump: z.string().min(1).optional(),
  become: z.boolean().optional(),
  become_user: z.string().min(1).optional(),
  /** Name of the environment variable holding the sudo password (prompted when unset on a TTY). */
  become_password_env: z.string().min(1).optional(),
  connect_timeout: z.number().positive().max(600).optional(),
  /**
   * Seconds a command that changes the host may run before the host stops it (and everything it
   * started). Unset: each module's own bound (apt 1800, the others 600).
   */
  command_timeout: z.number().positive().max(86_400).optional(),
  /** Seconds a batch of state reads (facts, probes, guards such as `unless`) may run (default 60). */
  probe_timeout: z.number().positive().max(3600).optional(),
  /**
   * How a connection's second and later commands travel: 'persistent' (default), one long-lived
   * channel per identity (a command costs one network round trip); 'exec', a channel each (about
   * three), which sudo's log records one by one.
   */
  channel: z.enum(['exec', 'persistent']).optional(),
};

const varsSchema = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a var name is letters, digits and _'), z.unknown());

const nameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a name is letters, digits, ".", "_" and "-", starting with a letter or digit');

export const hostSchema = z.strictObject({
  address: z.string().min(1),
  groups: z.array(nameSchema).optional(),
  vars: varsSchema.optional(),
  ...connectionFields,
});

export const groupSchema = z.strictObject({
  hosts: z.array(nameSchema).optional(),
  children: z.array(nameSchema).optional(),
  vars: varsSchema.optional(),
  ...connectionFields,
});

export const inventorySchema = z.strictObject({
  /** Secrets file (YAML map name → value), relative to the inventory file; mode 0600 required. */
  secrets_file: z.string().min(1).optional(),
  /** A program that prints a secret's value, run (without a shell) for a !secret found in neither the environment nor the secrets file. */
  secrets_command: z.string().min(1).optional(),
  /** The ssh_config read for host aliases, users, ports, keys and jumps: a path, or false for none (default ~/.ssh/config). */
  ssh_config: z.union([z.literal(false), z.string().min(1)]).optional(),
  defaults: z.strictObject({ ...connectionFields }).optional(),
  vars: varsSchema.optional(),
  groups: z.record(nameSchema, groupSchema.nullable()).optional(),
  hosts: z.record(nameSchema, hostSchema.nullable()),
});

export type RawInventory = z.infer<typeof inventorySchema>;
export type RawHost = z.infer<typeof hostSchema>;
export type RawGroup = z.infer<typeof groupSchema>;
export type ConnectionSettings = {
  [K in keyof typeof connectionFields]?: z.infer<(typeof connectionFields)[K]>;
};
