// Public API of the pure reconciler. No I/O, no clock reads, no randomness: time is an input.
export { decide, prepareFleet, type PreparedFleet } from './decide.ts';
export { fleetView, type FleetViewOptions } from './view.ts';
export { latestAcks } from './acks.ts';
export { ReconcilerInputError } from './context.ts';
export { derivePhase, describePhase, phaseParams, type DerivedPhase, type PhaseParams } from './phase.ts';
export { maintenanceWindowAt, type WindowVerdict } from './maintenance.ts';
export {
  GATES,
  DEFAULT_TOLERANCES,
  type AckRecord,
  type BudgetView,
  type ChannelState,
  type ChannelView,
  type DecideInput,
  type Decision,
  type FleetInput,
  type FleetView,
  type Freshness,
  type Gate,
  type GenerationRef,
  type HostPhase,
  type HostView,
  type LocalState,
  type PendingActivation,
  type QuarantineEntry,
  type Tolerances,
  type WaveState,
  type WaveView,
} from './types.ts';
export { trace, type TraceInput, type Trace, type TraceEntry, type HostTrace, type GateHoldSpan } from './trace.ts';
