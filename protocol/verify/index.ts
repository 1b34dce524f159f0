// Public API of the verification workflow (see docs/architecture.md, "Verification and the trust root chain").
export type { Fetch } from './fetcher.ts';
export { diskFetch, readTreeFile } from './fetcher.ts';
export { ClientState, initialClientState, parseClientState } from './state.ts';
export {
  updateTrust, walkRootChain, verifyTimestamp, verifyRevocations, isFreshnessFailure, DEFAULT_CLOCK_SKEW_SECONDS,
  type TrustedSnapshot, type UpdateTrustResult, type UpdateTrustOptions, type SeenVersions,
} from './update-trust.ts';
export { fetchHostView, type HostView, type FetchHostViewOptions } from './host-view.ts';
export { verifyTree, type TreeReport, type DocumentResult, type VerifyTreeOptions } from './tree.ts';
export { requireFileRef, verifyReleaseDocument } from './documents.ts';
