// Size caps for every document type: applied by every reader (agent fetches, the verifier, the ack
// endpoint) before parsing, so endless data is cut off early.
export const LIMITS = {
  root: 64 * 1024,
  timestamp: 16 * 1024,
  revocations: 4 * 1024 * 1024,
  controls: 1024 * 1024,
  enrolment: 1024 * 1024,
  /** One enrolment request: a token, a host-signed request and a CSR. */
  enrolmentRequest: 16 * 1024,
  releaseIndex: 64 * 1024 * 1024,
  hostManifest: 64 * 1024,
  channelPlan: 32 * 1024 * 1024,
  budgets: 32 * 1024 * 1024,
  /** Room for 32 probe results and 32 compliance evidence entries (each excerpt <= 256 chars). */
  ack: 64 * 1024,
  ackBundle: 64 * 1024 * 1024,
  fleet: 64 * 1024 * 1024,
} as const;
