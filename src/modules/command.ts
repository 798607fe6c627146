import { z } from 'zod';
import { quote } from '../util/quote.js';
import { Secret } from '../util/secrets.js';
import type { Probe } from '../facts/index.js';
import type { ModuleDef } from './types.js';

const params = z.strictObject({
  /** A POSIX sh command line. Quote interpolated values with sh`` from util/quote. */
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
  stdin: z.union([z.string(), z.instanceof(Secret)]).optional(),
  /** Exit codes that count as success. */
  ok_codes: z.array(z.number().int()).default([0]),
  timeout: z.number().positive().optional(),
});
export type CommandParams = z.input<typeof params>;

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
  secretParams: ['stdin'],
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
    // "cd --": never an option of cd, even if the schema above is ever relaxed.
    const cmd = p.chdir ? `cd -- ${quote(p.chdir)} && ${p.cmd}` : p.cmd;
    return {
      changes: [{ kind: 'command', target: p.cmd, action: 'run' }],
      commands: [
        {
          kind: 'shell',
          cmd,
          stdin: p.stdin instanceof Secret ? p.stdin.reveal() : p.stdin,
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
