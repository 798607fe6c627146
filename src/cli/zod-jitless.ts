// Imported first by the CLI's preAction hook (src/cli/main.ts), before any module builds a schema: zod reads
// `jitless` when a schema is made, not when it parses. A CLI run parses each object schema a few
// times; zod's default compiles a fast path for each (source text written, then `new Function`) on
// its first parse, which costs more than that run's parses save (measured: bench/startup.mjs,
// README "Speed"). Same checks, same errors: only the generated fast path is left out.
import { config } from 'zod';

config({ jitless: true });
