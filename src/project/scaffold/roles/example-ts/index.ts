import { copy, defineRole, z } from 'provision';

/** A role in TypeScript: its vars are a zod schema (default and description per var); tasks are built per host. */
export const role = defineRole({
  name: 'example-ts',
  description: 'An example role in TypeScript: one file whose text comes from a var.',
  vars: z.object({
    example_ts_message: z.string().min(1).default('written by the example-ts role').describe('the text of /etc/provision-example-ts.txt'),
  }),
  tasks: (ctx) => [
    copy('example-ts file', { dest: '/etc/provision-example-ts.txt', content: `${ctx.vars.example_ts_message} (${ctx.vars.inventory_hostname})\n`, mode: '0644' }),
  ],
});
