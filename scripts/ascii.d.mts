// Types of scripts/ascii.mjs for its unit test.
export function toAscii(code: string, file: string): Promise<string>;
