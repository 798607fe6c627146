import { z } from 'zod';
import { quote } from '../util/quote.js';
import { Secret } from '../util/secrets.js';
import type { Probe } from '../facts/index.js';
import type { ModuleDef } from './types.js';

const params = z.strictObject({
  /**
   * A POSIX sh command line. From TypeScript, quote interpolated values with sh`` (util/quote);
   * from YAML, "{{ … }}" values are escaped for their place (shellParams) and may not be secrets.
   */
  cmd: z.string().min(1),
  /** Skip when this path exists. */
  creates: z.string().optional(),
  /** Skip unless this path exists. */
  removes: z.string().optional(),
  /** Skip when this command exits 0. */
  unless: z.string().optional(),
  /** Run only when this command exits 0. */
  onlyif: z.string().optional(),
  /** Absolute: a relative one depends on the login's directory, and "-" would mean cd's previous directory. */
  chdir: z.string().startsWith('/', 'an absolute path').optional(),
  /** Sent on the command's stdin: the way to hand it a secret (never in cmd, where argv shows it). */
  stdin: z.union([z.string(), z.instanceof(Secret)]).optional(),
  /**
   * Environment variables for cmd (not for the unless/onlyif guards). Values may be secrets: they
   * travel on stdin, ahead of `stdin`, and the shell exports them itself, so they are never in argv.
   */
  environment: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name (letters, digits, _)'), z.union([z.string(), z.instanceof(Secret)])).optional(),
  /** Exit codes that count as success. */
  ok_codes: z.array(z.number().int()).default([0]),
  timeout: z.number().positive().optional(),
});
export type CommandParams = z.input<typeof params>;

const reveal = (v: string | Secret): string => (v instanceof Secret ? v.reveal() : v);

/**
 * Reads NAME=base64(value) lines from stdin up to an empty line and exports them. `read` takes one
 * line at a time and never more, so the rest of stdin is left for the command. printf is a builtin
 * and base64 reads from a pipe: no value is ever an argument of a process.
 */
const ENV_FROM_STDIN =
  'while IFS= read -r provision_env && [ -n "$provision_env" ]; do ' +
  'provision_value=$(printf %s "${provision_env#*=}" | base64 -d && printf x) || exit 1; ' +
  'export "${provision_env%%=*}=${provision_value%x}"; done; unset provision_env provision_value; ';

/** The environment as the lines ENV_FROM_STDIN reads. */
function environmentBlock(env: Record<string, string | Secret>): string {
  return Object.entries(env).map(([k, v]) => `${k}=${Buffer.from(reveal(v), 'utf8').toString('base64')}\n`).join('') + '\n';
}

function guardProbes(p: z.output<typeof params>): Probe[] {
  const out: Probe[] = [];
  if (p.creates) out.push({ key: `exists:${p.creates}`, script: `test -e ${quote(p.creates)}` });
  if (p.removes) out.push({ key: `exists:${p.removes}`, script: `test -e ${quote(p.removes)}` });
  if (p.unless) out.push({ key: `cmd:${p.unless}`, script: p.unless });
  if (p.onlyif) out.push({ key: `cmd:${p.onlyif}`, script: p.onlyif });
  return out;
}

/**
 * Runs a command. It is never "ok" on its own: without a guard (creates, removes, unless, onlyif)
 * it runs and reports changed every time, so a playbook cannot look idempotent when it is not.
 */
export const commandModule: ModuleDef<z.output<typeof params>> = {
  name: 'command',
  schema: params,
  shellParams: ['cmd', 'unless', 'onlyif'],
  secretParams: ['stdin', 'environment'],
  probes: (p) => guardProbes(p),
  plan(p, ctx) {
    const code = (key: string) => ctx.results.get(key)?.code ?? 1;
    // An earlier task's file counts even when empty (touch, or another command's creates): has(), not truthiness.
    const predictedCreated = p.creates !== undefined && ((ctx.predicted.files.has(p.creates) && ctx.predicted.files.get(p.creates) !== null) || ctx.predicted.directories.has(p.creates));
    if (p.creates && (code(`exists:${p.creates}`) === 0 || predictedCreated)) return { changes: [], commands: [] };
    if (p.removes && code(`exists:${p.removes}`) !== 0) return { changes: [], commands: [] };
    if (p.unless && code(`cmd:${p.unless}`) === 0) return { changes: [], commands: [] };
    // Guards are read from the host as it is, in a dry run too: onlyif false → skip, unless false → run.
    if (p.onlyif && code(`cmd:${p.onlyif}`) !== 0) return { changes: [], commands: [] };
    const env = p.environment && Object.keys(p.environment).length ? p.environment : undefined;
    // "cd --": never an option of cd, even if the schema above is ever relaxed.
    const cmd = (env ? ENV_FROM_STDIN : '') + (p.chdir ? `cd -- ${quote(p.chdir)} && ${p.cmd}` : p.cmd);
    const stdin = env ? environmentBlock(env) + (p.stdin === undefined ? '' : reveal(p.stdin)) : p.stdin === undefined ? undefined : reveal(p.stdin);
    return {
      changes: [{ kind: 'command', target: p.cmd, action: 'run' }],
      commands: [
        {
          kind: 'shell',
          cmd,
          stdin,
          okCodes: p.ok_codes,
          timeoutMs: p.timeout ? p.timeout * 1000 : undefined,
        },
      ],
      predict: (s) => {
        if (p.creates) s.files.set(p.creates, Buffer.alloc(0));
      },
    };
  },
};
