// Public face of agent/: other folders import agent only through this file (docs/architecture.md,
// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.
export { createActivator } from './activators/index.ts';
export type { ActivatorConfig } from './activators/index.ts';
export { closeAgentConnections, runAgentOnce } from './agent.ts';
export type { RunOutcome } from './agent.ts';
export { AgentConfig, loadAgentConfig } from './config.ts';
export { HttpClient, NotFound, Unreachable } from './http-client.ts';
export { createLogger } from './log.ts';
export type { Logger } from './log.ts';
export { Quarantine } from './quarantine.ts';
export { StateDir } from './state-dir.ts';
