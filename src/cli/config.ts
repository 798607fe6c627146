import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { InputError } from '../util/errors.js';
import { readYamlFile, schemaError } from '../util/yaml.js';

/** The project's settings file: the defaults of the options a team would otherwise type on every command. */
export const CONFIG_FILE = 'provision.yml';

const configSchema = z.strictObject({
  /** An inventory name (inventory/NAME.yml) or a path, relative to the project. */
  inventory: z.string().min(1).optional(),
  /** The playbook, relative to the project. */
  playbook: z.string().min(1).optional(),
  forks: z.number().int().positive().optional(),
  /** Every run's plain output, with timestamps, secrets masked, to this file (0600), relative to the project. */
  log: z.string().min(1).optional(),
  /** false: never colour (as --no-color); true (default): colour on a terminal unless NO_COLOR is set. */
  color: z.boolean().optional(),
});

export type ProjectConfig = z.output<typeof configSchema>;

/** A config file problem is bad input: exit 4, before anything is read or contacted. */
export class ConfigError extends InputError {}

const isPath = (v: string) => v.includes('/') || /\.(ya?ml|ini)$/.test(v);

/**
 * The settings of the project in `dir` (provision.yml), paths resolved from `dir`; none when the
 * file is absent. The one place the file is read: the project folder's --project plugs in here.
 */
export function loadConfig(dir: string): ProjectConfig {
  const file = path.join(dir, CONFIG_FILE);
  if (!existsSync(file)) return {};
  const src = readYamlFile(file, 'config', ConfigError);
  if (src.data === null || src.data === undefined) return {};
  const parsed = configSchema.safeParse(src.data);
  if (!parsed.success) throw new ConfigError(schemaError(src, parsed.error.issues), `${CONFIG_FILE} keys: ${Object.keys(configSchema.shape).join(', ')}`);
  const c = parsed.data;
  const resolve = (v: string | undefined) => (v === undefined ? undefined : path.resolve(dir, v));
  return {
    ...c,
    inventory: c.inventory !== undefined && isPath(c.inventory) ? resolve(c.inventory) : c.inventory,
    playbook: resolve(c.playbook),
    log: resolve(c.log),
  };
}

/**
 * The config's values as the command's option values, wherever the command line did not set that
 * option (commander's "cli" and "env" sources win). Only options the command has are set.
 */
export function applyConfig(command: Command, config: ProjectConfig): void {
  const has = new Set(command.options.map((o) => o.attributeName()));
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined || !has.has(key)) continue;
    const source = command.getOptionValueSource(key);
    if (source === 'cli' || source === 'env') continue;
    command.setOptionValueWithSource(key, value, 'config');
  }
}
