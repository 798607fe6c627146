#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx: the CLI is always the code in src/.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
