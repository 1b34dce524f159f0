// Public API of the control plane (see docs/architecture.md, "Control plane").
export { startControlPlane, startAckEndpoint, type ControlPlaneOptions, type AckEndpointOptions, type RunningServer, type TlsMaterial, type AckOptions } from './server.ts';
export { AckService, DEFAULT_ACK_RATE_LIMIT, type AckResponse, type AckServiceOptions } from './ack-service.ts';
export { AckLog } from './ack-log.ts';
export { parseAckLog, ACK_LOG_FILE, AckLogCorrupt, type LogRecord } from '../protocol/ack-log.ts';
export { loadReleaseView, normalizeSerial, type ReleaseView, type HostEntry } from './release-view.ts';
export { identityFromTls, identityFromProxyHeaders, authorizePath, IDENTITY_HEADERS, type ClientIdentity } from './identity.ts';
export { servedRoot, acksRoot, CURRENT_LINK, VERSIONS_DIR, REVOKED_SERIALS_MAP, REVOKED_HOSTS_MAP } from './tree-dir.ts';
export { initPki, issueHostCert, issueOperatorCert, revokeCert, revokedSerials, certSerial, pkiPaths, PkiError, type IssuedCert, type PkiPaths } from './pki.ts';
export { syncTree, revocationMaps, writeRevocationMaps, ensureRevocationMaps, reloadNginx, type SyncOptions, type SyncResult } from './sync.ts';
export { mergeAckRecords, mergeAckLogFiles, type MergeResult } from './ack-merge.ts';
export { renderNginxConfig, renderServerBlock, type NginxConfigOptions } from './nginx-config.ts';
