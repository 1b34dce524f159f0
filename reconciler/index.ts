// Public API of the pure reconciler. No I/O, no clock reads, no randomness: time is an input.
export { forkWinner, latestAcks } from './acks.ts';
export { describeFailing, judgeEvidence } from './compliance.ts';
export { decide, decisionReadsPeerAcks, prepareFleet } from './decide.ts';
export { derivePhase, phaseParams } from './phase.ts';
export { syntheticFleet } from './simulator/generate.ts';
export { simulate } from './simulator/sim.ts';
export { humanDuration, parseAckTime } from './time.ts';
export { trace, tracePeriod } from './trace.ts';
export type { Trace, TraceCheckpoint, TraceInput } from './trace.ts';
export { DEFAULT_TOLERANCES, HOST_PHASES } from './types.ts';
export type {
  AckRecord,
  ChannelView,
  DecideInput,
  Decision,
  FleetInput,
  FleetView,
  Freshness,
  Gate,
  HostPhase,
  HostView,
  LocalState,
  Tolerances,
} from './types.ts';
export { fleetView } from './view.ts';
export { listWithMore, waveLabel } from './words.ts';
