import { existsSync, readFileSync } from 'node:fs';
import { INSTANCE } from './lab-env.ts';

export const FIRST_RUN_FILE = `/tmp/provision-e2e/${INSTANCE}-first-run.json`;
/** `provision plan --json` on the fresh hosts, just before the first run. */
export const FRESH_PLAN_FILE = `/tmp/provision-e2e/${INSTANCE}-fresh-plan.json`;

export interface FirstRun {
  code: number;
  stderr: string;
  events: Array<Record<string, unknown>>;
  wallMs: number;
  /** The run right after it, before any test touched the site. */
  second?: { code: number; stderr: string; events: Array<Record<string, unknown>>; wallMs: number };
}

export function firstRun(): FirstRun | undefined {
  return existsSync(FIRST_RUN_FILE) ? (JSON.parse(readFileSync(FIRST_RUN_FILE, 'utf8')) as FirstRun) : undefined;
}
