export { batchScript, batchTemplate, parseBatchOutput, PROBE_RETRY, ProbeTimeoutError, runProbes } from './batch.js';
export type { ProbeResult, RawProbe, ReadMemory, SharedRead } from './batch.js';
export { factsFingerprint, factsFromResults, factsToJSON, gatherFacts, gatherFactsRemembering, parseFacts, FACT_PROBES } from './facts.js';
export type { Facts, PackageFact, ServiceFact } from './facts.js';
export type { RememberedRead, RememberOptions } from './remembered.js';
