// Types of bench/idiomatic.mjs (a plain script of the bench) for its unit test.
export type HostState = Record<string, string[]>;
export interface HostReport {
  same: boolean;
  compared: number;
  packages: { count: number; oursOnly: string[]; theirsOnly: string[]; ansibleOwn: string[] };
  differs: Array<{ what: string; oursOnly: string[]; theirsOnly: string[] }>;
}
export const ANSIBLE_OWN_PACKAGES: string[];
export function compareStates(ours: Record<string, HostState>, theirs: Record<string, HostState>, secretValues?: string[]): { equivalent: boolean; hosts: Record<string, HostReport> };
export function stateScript(m: { files: string[]; paths: string[]; units: string[] }): string;
export function secretValuesOf(file: string): string[];
