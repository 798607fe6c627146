// Prints the batched fact script exactly as the engine sends it (for bench/floor.mjs).
import { batchScript, FACT_PROBES } from '../src/facts/index.js';

process.stdout.write(batchScript(FACT_PROBES, '0123456789abcdef') + '\n');
