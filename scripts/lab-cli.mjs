#!/usr/bin/env node
// Runs `provision lab ...` straight from src/lab (before/without the engine's CLI).
import { register } from 'tsx/esm/api';
register();
const { labMain } = await import('../src/lab/index.ts');
process.exitCode = await labMain(process.argv.slice(2));
