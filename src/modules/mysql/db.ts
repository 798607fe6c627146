// mysql_db: a database present (character set, collation) or absent.
import { z } from 'zod';
import type { ModuleDef, Plan } from '../types.js';
import { dbName, flavor, NOT_INSTALLED_NOTE, parseRows, probeOutput, selectProbe, sqlCommand, sqlIdent, sqlString } from './client.js';

const dbParams = z.strictObject({
  name: dbName,
  state: z.enum(['present', 'absent']).default('present'),
  encoding: z.string().regex(/^[a-z0-9]+$/).default('utf8mb4'),
  collation: z
    .string()
    .regex(/^[a-z0-9_]+$/)
    .optional(),
  /** false: the statement stays out of the binary log (host-local housekeeping, never replicated). */
  binlog: z.boolean().default(true),
  flavor,
});
export type MysqlDbParams = z.input<typeof dbParams>;

export const mysqlDbModule: ModuleDef<z.output<typeof dbParams>> = {
  name: 'mysql_db',
  schema: dbParams,
  probes: (p) => [
    selectProbe(`mysql:db:${p.name}`, `SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ${sqlString(p.name)}`),
  ],
  plan(p, ctx): Plan {
    const out = probeOutput(ctx, `mysql:db:${p.name}`, `database ${p.name}`);
    const row = out === undefined ? undefined : parseRows(out)[0];
    const target = `database ${p.name}`;
    if (p.state === 'absent') {
      if (!row) return { changes: [], commands: [] };
      return { changes: [{ kind: 'sql', target, action: 'drop' }], commands: [sqlCommand([{ sql: `DROP DATABASE IF EXISTS ${sqlIdent(p.name)}` }], p.binlog)] };
    }
    const spec = `CHARACTER SET ${p.encoding}${p.collation ? ` COLLATE ${p.collation}` : ''}`;
    if (!row) {
      return {
        changes: [{ kind: 'sql', target, action: `create (${p.encoding})` }],
        commands: [sqlCommand([{ sql: `CREATE DATABASE IF NOT EXISTS ${sqlIdent(p.name)} ${spec}` }], p.binlog)],
        note: out === undefined ? NOT_INSTALLED_NOTE : undefined,
      };
    }
    const [charset, collation] = row;
    if (charset === p.encoding && (!p.collation || collation === p.collation)) return { changes: [], commands: [] };
    return {
      changes: [{ kind: 'sql', target, action: 'alter character set', before: `${charset} ${collation}\n`, after: `${p.encoding}${p.collation ? ` ${p.collation}` : ''}\n` }],
      commands: [sqlCommand([{ sql: `ALTER DATABASE ${sqlIdent(p.name)} ${spec}` }], p.binlog)],
    };
  },
};
