// Public face of publisher/: other folders import publisher only through this file (docs/architecture.md,
// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.
export { currentTreeControls, writeControls } from './controls.ts';
export type { ControlsBody, WriteControlsResult } from './controls.ts';
export { describeResolution, formatResolution } from './describe.ts';
export { describeDiff } from './diff.ts';
export { mintEnrolmentToken, withdrawEnrolmentNonces } from './enrolment.ts';
export { PublishRefused } from './errors.ts';
export { evalFlake, FleetInputError, readFleetFile } from './fleet-input.ts';
export type { FleetInput } from './fleet-schema.ts';
export { publishRelease, publishReleaseChecked } from './publish.ts';
export type { PublishProgress, PublishResult } from './publish.ts';
export { refreshTimestamp } from './refresh.ts';
export type { RefreshResult } from './refresh.ts';
export { planRollback } from './rollback.ts';
export type { RollbackPolicy } from './rollback.ts';
export { loadTrustDir } from './trust.ts';
export { FleetInvalid, validateFleet } from './validate.ts';
