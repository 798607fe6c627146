export { batchScript, parseBatchOutput, PROBE_RETRY, ProbeTimeoutError, runProbes } from './batch.js';
export type { ProbeResult, RawProbe, SharedRead } from './batch.js';
export { factsFingerprint, factsFromResults, factsToJSON, gatherFacts, parseFacts, FACT_PROBES } from './facts.js';
export type { Facts, PackageFact, ServiceFact } from './facts.js';
