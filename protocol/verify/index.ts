// Public API of the verification workflow (see docs/architecture.md, "Verification and the trust root chain").
export { verifyByChainTips } from './ack-chains.ts';
export type { ChainedSignatureJob } from './ack-chains.ts';
export { keepVerifierWarm } from './batch-pool.ts';
export { verifyBatch } from './batch-verify.ts';
export type { SignatureJob } from './batch-verify.ts';
export { verifyControlsDocument } from './controls.ts';
export {
  readBudgetsHead,
  readChannelPlan,
  readChannelPlanHead,
  readReleaseIndex,
  readRevocations,
  readTimestamp,
  requireFileRef,
  requireFleet,
  verifyReleaseDocument,
} from './documents.ts';
export type { ReleaseIndexHead } from './documents.ts';
export {
  readEnrolmentRequest,
  readEnrolmentToken,
  verifyEnrolmentDocument,
  verifyEnrolmentRequest,
  verifyEnrolmentToken,
} from './enrolment.ts';
export type { Fetch } from './fetcher.ts';
export { channelFreshness } from './freshness.ts';
export { checkNotRevoked, fetchHostView } from './host-view.ts';
export type { HostView } from './host-view.ts';
export { BOUND_MANIFEST, verifyRelease, verifyReleaseIndexHead } from './release.ts';
export type {
  ManifestSignatures,
  VerifiedDocumentMemo,
  VerifiedManifest,
  VerifiedRelease,
} from './release.ts';
export { ClientState, initialClientState } from './state.ts';
export { auditTree, verifyTree } from './tree.ts';
export type { TreeReport, TreeSource, VerifyTreeOptions } from './tree.ts';
export { DEFAULT_CLOCK_SKEW_SECONDS, isFreshnessFailure, updateTrust } from './update-trust.ts';
export type { UpdateTrustResult } from './update-trust.ts';
