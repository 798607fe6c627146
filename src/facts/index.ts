export { batchScript, parseBatchOutput, PROBE_RETRY, ProbeTimeoutError, runProbes } from './batch.js';
export type { Probe, ProbeResult, SharedRead } from './batch.js';
export { factsToJSON, gatherFacts, parseFacts, PENDING_HANDLERS_FILE, STATE_DIR, FACT_PROBES } from './facts.js';
export type { Facts, PackageFact, ServiceFact } from './facts.js';
