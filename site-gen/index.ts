// Public face of site-gen/: other folders import site-gen only through this file (docs/architecture.md,
// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.
export { buildSite } from './build.ts';
export type { SiteBuildResult, VerifiedStore } from './build.ts';
export { Notifier } from './notify.ts';
export type { NotifyTarget } from './notify.ts';
export { watchSite } from './watch.ts';
