// Public face of demo/: other folders import demo only through this file (docs/architecture.md,
// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.
export { Lab } from './lab.ts';
export type { LabHost, LabOptions } from './lab.ts';
export { runDemo } from './run.ts';
