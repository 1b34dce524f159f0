// Public face of protocol/: other folders import protocol only through this file (docs/architecture.md,
// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.
export {
  ACK_LOG_FILE,
  ackFloorName,
  AckLogCorrupt,
  ackSegmentName,
  auditAckChains,
  formatRecord,
  isAckSegmentName,
  listAckFloors,
  listAckLogSegments,
  parseAckLog,
  readAckFloor,
  readAckLogRecords,
  writeAckFloor,
} from './ack-log.ts';
export type {
  AckFloorHead,
  AckLink,
  AckLogSegment,
  ChainFloorHead,
  HostChainAudit,
  LogRecord,
} from './ack-log.ts';
export {
  ackDigest,
  checkAckClaims,
  hostKeysOfPlans,
  readAck,
  readAckBundle,
  signAck,
  verifyAck,
} from './acks.ts';
export type { AckTrust, BundledAck, SignedAck } from './acks.ts';
export { fsyncDir, stampPastPrevious, writeFileAtomic } from './atomic-write.ts';
export { cacheUrlTrustOverride, trustOverrideReason } from './cache-url.ts';
export {
  canonicalBytes,
  canonicalString,
  isSha256Digest,
  sha256Digest,
  sha256Hex,
} from './canonical.ts';
export { isNotFound, readCappedFile, readCappedFileInto, readInto } from './capped-file.ts';
export {
  ACK_LOG_DIR,
  ackLogDir,
  ackLogPath,
  ACKS_DIR,
  acksRoot,
  CURRENT_LINK,
  hasInstalledTree,
  servedRoot,
} from './control-plane-dir.ts';
export { diskTreeSource, readTreeFile, verifyTreeDir } from './disk-tree.ts';
export { readEnvelope } from './document.ts';
export { isValidPublicKey, signBytes, startBatchSigner, verifyBytes } from './ed25519.ts';
export { envelopeBytes, signDocument, signedTextOf } from './envelope.ts';
export {
  isVerificationError,
  KeyReused,
  Malformed,
  MixAndMatch,
  NonceRefused,
  Revoked,
  RollbackAttempt,
  Stale,
  TooLarge,
  VerificationError,
  WrongHost,
} from './errors.ts';
export type { VerificationCode } from './errors.ts';
export {
  acksSince,
  assembleEvidenceBundle,
  checkAckChain,
  controlsOf,
  EVIDENCE_BUNDLE_MAX_BYTES,
  UnknownScopeChannel,
  verifyEvidenceBundle,
  walkForEvidence,
} from './evidence.ts';
export type { EvidenceControl, EvidenceReport, EvidenceScope } from './evidence.ts';
export {
  b64,
  KeyFileError,
  keyIdOf,
  newSigningKey,
  publicPart,
  readPrivateKey,
  readPublicKey,
  unb64,
  writePrivateKey,
  writePublicKey,
} from './keys.ts';
export type { PublicKey, SigningKey } from './keys.ts';
export {
  ackBundlePath,
  budgetsPath,
  channelPlanPath,
  CONTROLS_FILE_PATTERN,
  controlsPath,
  ENROLMENT_FILE_PATTERN,
  enrolmentPath,
  hostManifestPath,
  latestAckPath,
  NIX_CACHE_DIR,
  releaseDir,
  releaseIndexPath,
  REVOCATIONS_PATH,
  rootPath,
  TIMESTAMP_PATH,
} from './layout.ts';
export { LIMITS } from './limits.ts';
export {
  DocumentMemo,
  ownedPrivately,
  readDocumentMemo,
  readPrivateRecords,
  saveDocumentMemo,
  savePrivateFile,
  savePrivateRecords,
} from './memo-file.ts';
export { moduleBeside, startModuleThread } from './module-thread.ts';
export { pidAlive, tryAcquirePidLock } from './pid-lock.ts';
export type { HeldPidLock, PidLockResult } from './pid-lock.ts';
export { readPinnedRoot } from './pinned-root.ts';
export { ownedByThisUser } from './private-owner.ts';
export { defaultCacheDir } from './cache-dir.ts';
export { PROMETHEUS_CONTENT_TYPE, renderMetrics, stateSamples } from './prometheus.ts';
export type { MetricFamily, Sample } from './prometheus.ts';
export {
  Ack,
  Base64Key32,
  ChannelName,
  ChannelPlan,
  ComplianceId,
  ComplianceMode,
  ControlEvidence,
  Controls,
  DeferredHosts,
  Digest,
  DisruptionBudgets,
  EnrolmentNonce,
  EnrolmentNonces,
  EnrolmentToken,
  EXCERPT_MAX,
  FleetName,
  HostManifest,
  HostName,
  isoTime,
  IsoTime,
  MaintenanceWindow,
  matchesSelector,
  MAX_TOKEN_LIFETIME_SECONDS,
  Name,
  NixPublicKey,
  noControls,
  NonNegativeInt,
  OnFailure,
  parseIsoTime,
  parseWith,
  plainIssues,
  PositiveInt,
  Probe,
  RebootPolicy,
  ReleaseIndex,
  Revocations,
  RuntimeControl,
  SCHEMA_VERSION,
  Selector,
  StorePath,
  Strategy,
  Tag,
  Threshold,
  Timestamp,
} from './schemas/index.ts';
export type {
  AckKind,
  ChannelCompliance,
  EnrolmentRequest,
  EvidenceBundle,
  FileRef,
  HostCompliance,
  PlanWave,
  SelectorSubject,
  SignedDocument,
  StaticControlResult,
  TrustRoot,
} from './schemas/index.ts';
export { parseStrictJson } from './strict-json.ts';
export { didYouMean } from './suggest.ts';
export {
  createRoot,
  readRoot,
  releaseKeysValidAt,
  signRoot,
  verifyEnrolmentSigned,
  verifyNextRoot,
  verifyOperatorSigned,
  verifyPinnedRoot,
  verifyReleaseSigned,
  verifyRootChain,
} from './trust-root.ts';
export type { ReleaseKeyGrant, SignedRoot } from './trust-root.ts';
export {
  auditTree,
  channelFreshness,
  checkNotRevoked,
  ClientState,
  DEFAULT_CLOCK_SKEW_SECONDS,
  fetchHostView,
  initialClientState,
  isFreshnessFailure,
  keepVerifierWarm,
  readBudgetsHead,
  readChannelPlan,
  readChannelPlanHead,
  readEnrolmentRequest,
  readEnrolmentToken,
  readReleaseIndex,
  readRevocations,
  readTimestamp,
  requireFileRef,
  requireFleet,
  updateTrust,
  verifyBatch,
  verifyByChainTips,
  verifyControlsDocument,
  verifyEnrolmentDocument,
  verifyEnrolmentRequest,
  verifyEnrolmentToken,
  verifyReleaseDocument,
  verifyReleaseIndexHead,
} from './verify/index.ts';
export type {
  ChainedSignatureJob,
  Fetch,
  HostView,
  ManifestSignatures,
  ReleaseIndexHead,
  SignatureJob,
  TreeReport,
  TreeSource,
  UpdateTrustResult,
  VerifiedDocumentMemo,
  VerifiedManifest,
} from './verify/index.ts';
