// Public API of the control plane (see docs/architecture.md, "Control plane").
export { ACK_LOG_FILE, AckLogCorrupt, parseAckLog, servedRoot } from '../protocol/index.ts';
export type { LogRecord } from '../protocol/index.ts';
export { archiveAckSegments } from './ack-log.ts';
export { mergeAckLogFiles, mergeAckRecords } from './ack-merge.ts';
export type { MergeResult } from './ack-merge.ts';
export { AckService } from './ack-service.ts';
export { startEnrolmentEndpoint } from './enrolment-server.ts';
export type { ClientIdentity } from './identity.ts';
export { DEFAULT_TLS_SESSION_CACHE, renderNginxConfig } from './nginx-config.ts';
export {
  expiringCerts,
  EXPIRY_WARNING_DAYS,
  exportPkcs12,
  initIssuingCa,
  initPki,
  issueHostCert,
  issueOperatorCert,
  issuingCaPaths,
  issuingFleet,
  listCerts,
  listEnrolmentCerts,
  PkiError,
  pkiPaths,
  renewCert,
  revokeCert,
  writeCrlChain,
} from './pki.ts';
export type { CertInfo, IssuedCert, KeyAlgorithm, PkiPaths } from './pki.ts';
export { loadReleaseView, loadVerifiedReleaseView } from './release-view.ts';
export { startAckEndpoint, startControlPlane } from './server.ts';
export type { RunningServer } from './server.ts';
export { ensureRevocationMaps, reloadNginx, syncTree } from './sync.ts';
export { REVOKED_HOSTS_MAP, REVOKED_SERIALS_MAP } from './tree-dir.ts';
