// Types of bin/bundle.mjs for its unit test.
export function loadBundle(file: string): { exports: Record<string, unknown>; saveCache(reachedHosts: boolean): void };
