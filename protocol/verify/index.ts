// Public API of the verification workflow (see docs/architecture.md, "Verification and the trust root chain").
export type { Fetch } from './fetcher.ts';
export { ClientState, initialClientState, parseClientState } from './state.ts';
export {
  updateTrust, verifySnapshot, nextClientState, walkRootChain, NONE_SEEN, verifyTimestamp, verifyRevocations, isFreshnessFailure, DEFAULT_CLOCK_SKEW_SECONDS,
  type TrustedSnapshot, type UpdateTrustResult, type UpdateTrustOptions, type SeenVersions, type VerifiedSnapshot, type VerifySnapshotOptions,
} from './update-trust.ts';
export { fetchHostView, type HostView, type FetchHostViewOptions } from './host-view.ts';
export { verifyTree, auditTree, type TreeReport, type TreeSource, type DocumentResult, type VerifyTreeOptions } from './tree.ts';
export { verifyRelease, verifyReleaseIndex, type VerifyReleaseOptions, type VerifiedRelease, type VerifiedManifest } from './release.ts';
export { requireFileRef, verifyReleaseDocument } from './documents.ts';
export { readControls, verifyControls, verifyControlsDocument } from './controls.ts';
export { channelFreshness, type ChannelFreshness } from './freshness.ts';
