import { z } from 'zod';
import { fileProbe } from './lib/file-state.js';
import { renderTemplate, secretsRead, templateFileReads } from './lib/render.js';
import { planFileContent, writeOptions } from './copy.js';
import type { ModuleDef } from './types.js';

const params = z.strictObject({
  ...writeOptions,
  /** Template file (Nunjucks, Jinja-like syntax) on the control machine. */
  src: z.string(),
  /** Variables for the template (roles pass their merged vars; playbooks default to the host's vars). */
  vars: z.record(z.string(), z.unknown()).optional(),
});
export type TemplateParams = z.input<typeof params>;

export { renderString, renderTemplate } from './lib/render.js';

export const templateModule: ModuleDef<z.output<typeof params>> = {
  name: 'template',
  schema: params,
  shellParams: ['validate'],
  secretParams: ['vars'],
  probes: (p) => [fileProbe(p.dest, true)],
  plan(p, ctx) {
    const vars = { ...ctx.host.vars, inventory_hostname: ctx.host.name, ...(p.vars ?? {}) };
    const content = renderTemplate(p.src, vars);
    // A template that reads a secret is sensitive by itself: never diff it in clear, whatever
    // filters (| dump, | b64…) did to the value on its way into the file.
    const sensitive = p.sensitive || secretsRead(templateFileReads(p.src), vars).length > 0;
    return planFileContent({ ...p, sensitive }, content, ctx);
  },
};
