/**
 * What the CLI writes, caught in-process: for tests that run main() and read its stderr/stdout.
 */
import { afterEach, beforeEach, vi } from 'vitest';

export interface CapturedOutput {
  /** Chunks written to process.stderr in the current test (emptied before each test). */
  readonly stderr: string[];
  /** Chunks written to process.stdout in the current test (emptied before each test). */
  readonly stdout: string[];
}

/** Registers hooks in the calling describe (or file) that catch stderr and stdout for each test and restore them after. */
export function captureOutput(): CapturedOutput {
  const output: CapturedOutput = { stderr: [], stdout: [] };
  beforeEach(() => {
    output.stderr.length = 0;
    output.stdout.length = 0;
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (output.stderr.push(String(chunk)), true));
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (output.stdout.push(String(chunk)), true));
  });
  afterEach(() => vi.restoreAllMocks());
  return output;
}
