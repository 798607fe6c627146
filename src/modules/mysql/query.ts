// mysql_query: SQL run when a guard query says it is needed (schema creation, housekeeping).
import { z } from 'zod';
import type { ModuleDef, Plan } from '../types.js';
import { dbName, NOT_INSTALLED_NOTE, parseRows, probeOutput, sqlCommand, sqlIdent, sqlProbe, type Stmt } from './client.js';

const queryParams = z.strictObject({
  /** Statements (separated by ";") run when needed. */
  sql: z.string().min(1),
  /** A query: when it returns at least one row, nothing is run. */
  unless: z.string().min(1).optional(),
  /** A query: the SQL runs only when it returns at least one row. Without a guard the SQL runs every time (reported changed). */
  onlyif: z.string().min(1).optional(),
  database: dbName.optional(),
  binlog: z.boolean().default(true),
});
export type MysqlQueryParams = z.input<typeof queryParams>;

function guardKey(kind: 'unless' | 'onlyif', query: string, database?: string): string {
  return `mysql:query:${kind}:${database ?? ''}:${query}`;
}

function guardSql(query: string, database?: string): string {
  return `${database ? `USE ${sqlIdent(database)};\n` : ''}${query.trim().replace(/;\s*$/, '')};`;
}

export const mysqlQueryModule: ModuleDef<z.output<typeof queryParams>> = {
  name: 'mysql_query',
  schema: queryParams,
  probes: (p) => [
    ...(p.unless ? [sqlProbe(guardKey('unless', p.unless, p.database), guardSql(p.unless, p.database))] : []),
    ...(p.onlyif ? [sqlProbe(guardKey('onlyif', p.onlyif, p.database), guardSql(p.onlyif, p.database))] : []),
  ],
  plan(p, ctx): Plan {
    let note: string | undefined;
    if (p.unless) {
      const out = probeOutput(ctx, guardKey('unless', p.unless, p.database), 'the unless query');
      if (out === undefined) note = NOT_INSTALLED_NOTE;
      else if (parseRows(out).length > 0) return { changes: [], commands: [] };
    }
    if (p.onlyif) {
      const out = probeOutput(ctx, guardKey('onlyif', p.onlyif, p.database), 'the onlyif query');
      // A guard that cannot be read yet (no server before the install) is taken as false for onlyif
      // (a clean-up on a fresh server has nothing to clean) and as not matching for unless (above).
      if (out === undefined) return { changes: [], commands: [], note: `${NOT_INSTALLED_NOTE}; its onlyif query is taken as empty` };
      if (parseRows(out).length === 0) return { changes: [], commands: [] };
    }
    const first = p.sql.trim().split('\n')[0]!;
    const show = first.length > 80 ? first.slice(0, 77) + '...' : first;
    const stmts: Stmt[] = [...(p.database ? [{ sql: `USE ${sqlIdent(p.database)}` }] : []), { sql: p.sql.trim().replace(/;\s*$/, ''), show }];
    return {
      changes: [{ kind: 'sql', target: p.database ? `database ${p.database}` : 'server', action: `run: ${show}`, after: p.sql.trim() + '\n' }],
      commands: [sqlCommand(stmts, p.binlog)],
      note,
    };
  },
};
