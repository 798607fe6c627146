// Types of bench/latency.mjs (a plain script of the bench) for its lab test.
export function cleanupStale(stateFile: string): void;
export function withLatency<T>(opts: { rttMs: number; addresses: string[]; stateFile: string; firstPort?: number }, fn: () => Promise<T> | T): Promise<T>;
