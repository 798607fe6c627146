import { defineModule, NO_CHANGE, probe, sh, z, type Plan } from 'provision';

/**
 * An example module: a file that holds exactly one line. The pattern of every module:
 *   schema   its params, validated before any host is contacted;
 *   probes   what it reads of the host (run in one batch with every other task's reads);
 *   plan     pure: the state read in, the changes and the commands out, as data (never runs anything);
 *   predict  what it would leave behind, so later tasks of a --check run see it.
 */
const params = z.strictObject({
  path: z.string().startsWith('/', 'an absolute path'),
  line: z.string().min(1).refine((s) => !s.includes('\n'), 'one line, without a newline'),
});

/** The file's content, or null when there is no such file (exit 3 of the probe). */
export const fileContent = (path: string) =>
  probe(`example:${path}`, sh`if [ -f ${path} ]; then cat -- ${path}; else exit 3; fi`, (r) => (r === undefined || r.code === 3 ? null : r.stdout));

export const module = defineModule({
  name: 'example',
  schema: params,
  probes: (p) => [fileContent(p.path)],
  plan(p, ctx): Plan {
    const wanted = `${p.line}\n`;
    // In --check, an earlier task of this run may have written the file already (as it would have).
    const predicted = ctx.predicted.files.get(p.path);
    const current = predicted !== undefined ? (predicted === null ? null : predicted.toString('utf8')) : ctx.read(fileContent(p.path));
    if (current === wanted) return NO_CHANGE;
    const dir = p.path.slice(0, p.path.lastIndexOf('/')) || '/';
    return {
      changes: [{ kind: 'file', target: p.path, action: current === null ? 'create' : 'update content', before: current ?? '', after: wanted }],
      // A command is data: shown, masked, planned; the content goes on stdin, never into argv.
      commands: [{ kind: 'shell', cmd: sh`mkdir -p -- ${dir} && cat > ${p.path}`, stdin: wanted, describe: `write ${p.path}` }],
      predict: (state) => {
        state.files.set(p.path, Buffer.from(wanted));
        state.anyChange = true;
      },
    };
  },
});
