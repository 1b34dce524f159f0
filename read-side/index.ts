// Public face of read-side/: other folders import read-side only through this file (docs/architecture.md,
// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.
export { clearlyOlder, racyCutoff, sameStat, statOf } from './ack-file-memo.ts';
export type { AckFileMemo, FileStat } from './ack-file-memo.ts';
export {
  AckCache,
  AckCollector,
  ackHistoryByHost,
  acksDirOf,
  auditAckLogs,
  collectAckLog,
  collectTreeAcks,
  defaultAckLogOf,
  formatAckAudit,
  isLatestAckFile,
  MAX_ACK_FILES,
  readAckHistory,
} from './acks.ts';
export type {
  AckHistory,
  AckLogOptions,
  AckLogRead,
  AckSignatures,
  HashedFiles,
  LogPrefixMemo,
} from './acks.ts';
export { ArrivedAcks } from './arrived-acks.ts';
export { StatHelper, installStatHelper } from './stat-helper.ts';
export { hostCompliance } from './compliance.ts';
export type { HostComplianceView } from './compliance.ts';
export { exportEvidence, renderEvidenceReport } from './evidence.ts';
export { ackTrustOf, fleetInputOf, loadFleetState, releaseForOperator } from './load.ts';
export type { FleetState } from './load.ts';
export { loadReleaseAllowingStale, loadVerifiedRelease } from './release.ts';
export type { ReleaseLoad, VerificationFailure, VerifiedRelease } from './release.ts';
export { loadRemoteFleetState, RemoteAccessDenied, RemoteUnavailable } from './remote.ts';
export { renderStatus, statusReport } from './status.ts';
export { UnknownSubject } from './subject.ts';
export { loadAckHistory, renderTrace, traceReport, traceScope } from './trace.ts';
export type { TraceSubject } from './trace.ts';
export { openVerifiedAckStore } from './verified-cache.ts';
export type { VerifiedAckStore } from './verified-cache.ts';
