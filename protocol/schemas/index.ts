export { Ack, AckBundle } from './ack.ts';
export type { AckKind } from './ack.ts';
export {
  Base64Key32,
  ChannelName,
  Digest,
  FleetName,
  HostName,
  isoTime,
  IsoTime,
  KeyId,
  Name,
  NixPublicKey,
  NonNegativeInt,
  parseIsoTime,
  PositiveInt,
  SCHEMA_VERSION,
  StorePath,
} from './common.ts';
export type { FileRef } from './common.ts';
export {
  ComplianceId,
  ComplianceMode,
  ControlEvidence,
  EXCERPT_MAX,
  RuntimeControl,
} from './compliance.ts';
export type { ChannelCompliance, HostCompliance, StaticControlResult } from './compliance.ts';
export { Controls, noControls } from './controls.ts';
export {
  EnrolmentNonce,
  EnrolmentNonces,
  EnrolmentRequest,
  EnrolmentToken,
  MAX_TOKEN_LIFETIME_SECONDS,
} from './enrolment.ts';
export { Envelope, SignatureEntry } from './envelope.ts';
export type { SignedDocument } from './envelope.ts';
export { EVIDENCE_BUNDLE_TYPE, EvidenceBundle } from './evidence.ts';
export { plainIssues } from './issues.ts';
export { parseWith } from './parse.ts';
export {
  ChannelPlan,
  DeferredHosts,
  DisruptionBudgets,
  HostManifest,
  MaintenanceWindow,
  OnFailure,
  Probe,
  RebootPolicy,
  ReleaseIndex,
  Strategy,
  Threshold,
} from './release.ts';
export type { PlanWave } from './release.ts';
export { Revocations } from './revocations.ts';
export { TrustRoot } from './root.ts';
export { matchesSelector, Selector, Tag } from './selector.ts';
export type { SelectorSubject } from './selector.ts';
export { Timestamp } from './timestamp.ts';
