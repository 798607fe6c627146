// Types of bench/relay.mjs (a plain script of the bench) for its unit test.
import type { EventEmitter } from 'node:events';

export interface RelayTarget {
  host: string;
  port: number;
}
export function delayedPipe(
  from: EventEmitter & { pause(): void; resume(): void },
  to: EventEmitter & { write(chunk: Buffer): boolean; end(): void },
  delayMs: number,
  now?: () => number,
): { pending(): number; cancel(): void };
export function startRelay(opts: { map: Map<number, RelayTarget>; delayMs: number; listenHost?: string }): Promise<{ ports: number[]; close(): Promise<void[]> }>;
export function parseMap(text: string): Map<number, RelayTarget>;
