// Where each document lives in the published tree (paths are relative to the tree root and are the
// `file` named in verification errors).
export const TIMESTAMP_PATH = 'timestamp.json';
export const REVOCATIONS_PATH = 'revocations.json';

/** Operator-signed controls, one immutable file per version; the timestamp binds the current one. */
export const controlsPath = (version: number): string => `controls-${version}.json`;
export const CONTROLS_FILE_PATTERN = /^controls-([1-9][0-9]{0,15})\.json$/;

/** Enrolment-role-signed nonce documents, one immutable file per version; the timestamp binds the current one. */
export const enrolmentPath = (version: number): string => `enrolment-${version}.json`;
export const ENROLMENT_FILE_PATTERN = /^enrolment-([1-9][0-9]{0,15})\.json$/;

export const rootPath = (version: number): string => `root/${version}.json`;
export const releaseDir = (version: number): string => `releases/${version}`;
export const releaseIndexPath = (version: number): string => `releases/${version}/index.json`;
export const hostManifestPath = (version: number, host: string): string =>
  `releases/${version}/hosts/${host}.json`;
export const channelPlanPath = (version: number, channel: string): string =>
  `releases/${version}/channels/${channel}.json`;
export const budgetsPath = (version: number): string => `releases/${version}/budgets.json`;

export const latestAckPath = (host: string): string => `acks/hosts/${host}.json`;
export const ackBundlePath = (channel: string, wave: number): string =>
  `acks/channels/${channel}/wave-${wave}.json`;
export const NIX_CACHE_DIR = 'nix-cache';
