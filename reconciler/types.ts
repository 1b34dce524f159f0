// The reconciler's inputs and outputs. Everything here is plain data that the caller has already
// verified; the reconciler itself does no I/O, reads no clock and uses no randomness.
import type {
  Ack,
  ChannelPlan,
  DeferredHosts,
  DisruptionBudgets,
  HostManifest,
  RebootPolicy,
  Revocations,
  Controls,
} from '../protocol/index.ts';

/** The `.signed` part of a verified host ack. */
export type AckRecord = Ack;

/** Verdict of the verified timestamp chain. Anything but `fresh` means "no new activations". */
export type Freshness =
  | { status: 'fresh' }
  | { status: 'stale'; reason: string }
  | { status: 'unsigned'; reason: string };

export interface Tolerances {
  /** Acks signed up to this far in the future are accepted (treated as signed `now`); later ones are ignored. */
  clockSkewSeconds: number;
  /** A healthy/heartbeat ack proves health only while younger than this many heartbeat intervals. */
  heartbeatExpiryFactor: number;
}

export const DEFAULT_TOLERANCES: Tolerances = { clockSkewSeconds: 60, heartbeatExpiryFactor: 3 };

/** Generation to return to: the exact number and path recorded before switching (never "one step back"). */
export interface GenerationRef {
  generation: number;
  path: string;
}

export interface PendingActivation {
  target: string;
  rolloutId: string;
  previous: GenerationRef;
  /** ms since the epoch: confirm before this or roll back. */
  deadline: number;
}

export interface QuarantineEntry {
  target: string;
  /** ms since the epoch */
  until: number;
}

export interface LocalState {
  /** Closure the host currently runs (null if unknown). */
  current: string | null;
  pending: PendingActivation | null;
  /** The generation before the last confirmed activation: what rollback-and-halt returns to. */
  previous: GenerationRef | null;
  quarantine: QuarantineEntry[];
}

/** Everything the fleet-wide view needs: documents of one release, latest ack per host, and time. */
export interface FleetInput {
  /** ms since the epoch */
  now: number;
  /** Channel plans of the release, by channel name. Must include every channel the question touches. */
  plans: Record<string, ChannelPlan>;
  budgets: DisruptionBudgets;
  revocations: Revocations;
  /** Latest verified ack per host (host name -> ack.signed). Use `latestAcks()` to build it from a list. */
  acks: Record<string, AckRecord>;
  tolerances?: Partial<Tolerances>;
  /** The verified operator controls the timestamp binds (pause, resumed halts, retries); absent = none. */
  controls?: Controls | null;
}

export interface DecideInput extends FleetInput {
  manifest: HostManifest;
  freshness: Freshness;
  local: LocalState;
  /** Why switching to the manifest's target needs a reboot (kernel, initrd, systemd, dbus change); null if it does not. */
  inhibitor: string | null;
}

/** Gates in their fixed evaluation order (see docs/architecture.md, "Reconciler"). */
export const GATES = [
  'recovery',
  'revoked',
  'compliance',
  'not-fresh',
  'quarantined',
  'paused',
  'halted',
  'channel-edge',
  'earlier-waves',
  'host-edge',
  'disruption-budget',
  'maintenance-window',
  'switch-inhibitor',
] as const;
export type Gate = (typeof GATES)[number];

export type Decision =
  | { kind: 'converged'; reason: string }
  | { kind: 'wait'; gate: Gate; reason: string; /** seconds */ retryAfter: number }
  | {
      kind: 'activate';
      target: string;
      /** ms since the epoch */ deadline: number;
      rolloutId: string;
      reason: string;
    }
  | { kind: 'rollback'; to: GenerationRef; gate: Gate; reason: string }
  | { kind: 'defer'; inhibitor: string; reboot: RebootVerdict; reason: string }
  | { kind: 'refuse'; gate: Gate; reason: string };

/**
 * Whether a deferring host may reboot into its target now (the channel's signed reboot policy and, for
 * `in-maintenance-window`, its windows at `now`). Allowed: stage the target with `boot`, reboot, and
 * confirm after the boot before `deadline` (the same confirm deadline an activation gets). Not allowed:
 * touch nothing and report `deferred` with `why`.
 */
export type RebootVerdict =
  | { allowed: true; /** ms since the epoch */ deadline: number; rolloutId: string }
  | { allowed: false; why: string };

/** Every phase a host can be in, in the order views list them (the one list: status, metrics, dashboard). */
export const HOST_PHASES = [
  'pending',
  'activating',
  'confirming',
  'healthy',
  'soaked',
  'converged',
  'failed',
  'deferred',
  'offline',
  'blocked',
] as const;
export type HostPhase = (typeof HOST_PHASES)[number];

export type WaveState = 'waiting' | 'active' | 'soaking' | 'complete' | 'halted';
export type ChannelState = 'gated' | 'in-progress' | 'complete' | 'halted';

export interface HostView {
  host: string;
  channel: string;
  wave: number;
  target: string;
  phase: HostPhase;
  /** One line on why the host is in this phase (ack kind and age, soak progress, ...). */
  detail: string;
  /** ms, signed time of the latest ack counted (null: none). */
  lastAck: number | null;
  /** Seconds of signed continuous health (healthy/heartbeat acks), 0 otherwise. */
  healthySeconds: number;
  /** For pending hosts: the first gate that holds it, with the reason; null when nothing holds it. */
  gate: Gate | null;
  reason: string | null;
  /** Offline hosts beyond the wave's excuse limit block the wave. */
  excused: boolean;
}

export interface WaveView {
  channel: string;
  index: number;
  state: WaveState;
  hosts: number;
  counts: Record<HostPhase, number>;
  failures: number;
  allowedFailures: number;
  soakSeconds: number;
  /** Hosts the wave is waiting for (not yet soaked/converged and not excused), first few. */
  blockingHosts: string[];
  reason: string;
}

export interface ChannelView {
  channel: string;
  rolloutId: string;
  releaseVersion: number;
  state: ChannelState;
  /** Index of the first incomplete wave (waves.length when all are complete). */
  currentWave: number;
  /** The signed reboot policy and what a wave does while one of its hosts defers (release.ts). */
  reboot: RebootPolicy;
  deferredHosts: DeferredHosts;
  waves: WaveView[];
  reason: string;
}

export interface BudgetView {
  id: string;
  max: number;
  inFlight: number;
  inFlightHosts: string[];
}

export interface FleetView {
  now: number;
  channels: ChannelView[];
  hosts: HostView[];
  budgets: BudgetView[];
}
