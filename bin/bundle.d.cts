// Types of bin/bundle.cjs for its unit test.
export function loadBundle(file: string): { exports: Record<string, unknown>; saveCache(reachedHosts: boolean): void };
