// How one host's phase in one channel rollout derives from its latest verified ack and `now`.
// This is the only place that interprets acks; the rules are documented in docs/architecture.md.
// A derived phase stays the same between threshold crossings (heartbeat expiry, offline window), so it
// carries the interval in which it holds and callers cache it per ack object (reconciler/context.ts):
// re-deriving 100k phases at every instant is what a fleet view or a simulator would otherwise spend its time on.
import type { ChannelCompliance, ChannelPlan } from '../protocol/index.ts';
import { complianceGatedPhase } from './compliance.ts';
import type { AckRecord, HostPhase, Tolerances } from './types.ts';
import { humanDuration, parseAckTime, soakProgress } from './time.ts';

export interface DerivedPhase {
  phase: HostPhase;
  /** What the ack says, without its age (see describePhase). */
  note: string;
  /** ms, signed time of the ack the phase rests on, clamped to `now` (null when none counts) */
  lastAck: number | null;
  /** Signed continuous health in seconds (healthy/heartbeat acks on the target). */
  healthySeconds: number;
  /**
   * Holds a disruption-budget slot whatever its rank: the host has started this rollout (or staged it for
   * a reboot) and has proved neither its soak nor a reported failure. Missing evidence keeps it in flight.
   */
  inFlight: boolean;
  /**
   * Proven out of the rollout for budgets: soaked, already on target (fresh), or a signed failure report.
   * Only a done host gives up its rank; everything else may still start (see docs/architecture.md).
   */
  done: boolean;
  /** Counts towards wave completion: soaked (proof of any age) or already on target (fresh). */
  settled: boolean;
  /** Why the phase is `failed`: a signed failure report, or a start with no outcome by its confirm deadline. */
  failure: 'reported' | 'presumed' | null;
  /** ms: the phase holds for every `now` in [validFrom, validUntil). */
  validFrom: number;
  validUntil: number;
}

export interface PhaseParams {
  rolloutId: string;
  target: string;
  soakSeconds: number;
  heartbeatExpiryMs: number;
  offlineWindowMs: number;
  /** A start (started/activated, or on target without established health) with no outcome this long after its signed time is presumed failed. */
  confirmMs: number;
  skewMs: number;
  /** The plan's compliance: in `enforce`, health counts only with passing runtime evidence (compliance.ts). */
  compliance?: ChannelCompliance;
}

export function phaseParams(
  plan: ChannelPlan,
  target: string,
  soakSeconds: number,
  tol: Tolerances,
): PhaseParams {
  const skewMs = tol.clockSkewSeconds * 1000;
  return {
    rolloutId: plan.rolloutId,
    target,
    soakSeconds,
    heartbeatExpiryMs: tol.heartbeatExpiryFactor * plan.heartbeatSeconds * 1000,
    offlineWindowMs: plan.offlineWindowSeconds * 1000,
    // The agent rolls back by itself unless its healthy ack round-trips before the deadline, so a start
    // still without an outcome after deadline + skew is either a failure or an outcome being withheld.
    confirmMs: plan.confirmDeadlineSeconds * 1000 + skewMs,
    skewMs,
    compliance: plan.compliance,
  };
}

/** One line for people: the phase's note and how old the ack is. */
export function describePhase(ph: DerivedPhase, now: number): string {
  return ph.lastAck === null
    ? ph.note
    : `${ph.note} (last ack ${humanDuration((now - ph.lastAck) / 1000)} ago)`;
}

const FOREVER = Number.MAX_SAFE_INTEGER;
const NO_ACK_REVOKED: Omit<DerivedPhase, 'validFrom' | 'validUntil'> = {
  phase: 'offline',
  note: 'host revoked: its acks no longer count',
  lastAck: null,
  healthySeconds: 0,
  inFlight: false,
  done: false,
  settled: false,
  failure: null,
};
const NO_ACK: Omit<DerivedPhase, 'validFrom' | 'validUntil'> = {
  phase: 'offline',
  note: 'no ack received',
  lastAck: null,
  healthySeconds: 0,
  inFlight: false,
  done: false,
  settled: false,
  failure: null,
};

/**
 * The phase of a host given its latest ack. Pure; the result carries the interval of `now` in which it
 * holds, so callers may reuse it for the same ack object within that interval.
 */
export function derivePhase(
  p: PhaseParams,
  ack: AckRecord | undefined,
  now: number,
  revoked: boolean,
): DerivedPhase {
  if (revoked) return { ...NO_ACK_REVOKED, validFrom: -FOREVER, validUntil: FOREVER };
  if (ack === undefined) return { ...NO_ACK, validFrom: -FOREVER, validUntil: FOREVER };
  // The compliance gate depends on the ack alone, so the interval the phase holds in is unchanged.
  const mine = ack.rolloutId === p.rolloutId && ack.target === p.target;
  return complianceGatedPhase(p.compliance, ack, mine, compute(p, ack, now));
}

function compute(p: PhaseParams, ack: AckRecord, now: number): DerivedPhase {
  const signed = parseAckTime(ack.time);
  if (signed > now + p.skewMs) {
    return {
      ...NO_ACK,
      note: `latest ack is signed ${humanDuration((signed - now) / 1000)} in the future, beyond the clock-skew tolerance: ignored`,
      validFrom: now,
      validUntil: now + 1,
    };
  }
  if (signed > now) {
    // Within the tolerance a future-dated ack counts as signed now, so a fast clock cannot stretch a soak.
    // Its phase changes with every `now` until its signed time: not cacheable.
    return { ...derive(p, ack, now, now, signed), validFrom: now, validUntil: now + 1 };
  }
  return derive(p, ack, signed, now, signed);
}

/**
 * Phase for an ack signed at `t` (<= now), with the interval of `now` in which it holds.
 *
 * Evidence rules (docs/architecture.md, "A host's phase"): a signed soak proof or failure report is final
 * for the rollout whatever its age, so completion never goes backwards when heartbeats later go stale;
 * only hosts with no evidence of having started can become `offline` (and be excused); a start without an
 * outcome stays in flight and, past its confirm deadline, is presumed failed. Missing evidence only waits.
 */
function derive(
  p: PhaseParams,
  ack: AckRecord,
  t: number,
  now: number,
  signed: number,
): DerivedPhase {
  const seen: Seen = { p, ack, t, age: now - t, signed };
  const mine = ack.rolloutId === p.rolloutId && ack.target === p.target;
  const { phase, thresholds } = mine ? rolloutPhase(seen) : otherRolloutPhase(seen);
  const v = validity(t, now, thresholds);
  // Written out, not `{ ...phase, ...validity }`: spreads cost V8 a map transition per object, ~4x the
  // time of this function over 10,000 hosts (docs/benchmarks.md "operator", h-views4).
  return {
    phase: phase.phase,
    note: phase.note,
    lastAck: phase.lastAck,
    healthySeconds: phase.healthySeconds,
    inFlight: phase.inFlight,
    done: phase.done,
    settled: phase.settled,
    failure: phase.failure,
    validFrom: v.validFrom,
    validUntil: v.validUntil,
  };
}

/** What derive looks at: the ack, its (clamped) time `t`, its age at `now` and its signed time. */
interface Seen {
  p: PhaseParams;
  ack: AckRecord;
  t: number;
  age: number;
  signed: number;
}
type Phase = Omit<DerivedPhase, 'validFrom' | 'validUntil'>;
/** A phase and the age thresholds it depends on: it holds until the ack's age crosses the next one. */
interface Verdict {
  phase: Phase;
  thresholds: number[];
}

function pending(t: number): Phase {
  return {
    phase: 'pending',
    note: 'not started',
    lastAck: t,
    healthySeconds: 0,
    inFlight: false,
    done: false,
    settled: false,
    failure: null,
  };
}

/** "kind" or "kind: reason". */
function described(kind: string, reason: string | null): string {
  return `${kind}${reason ? `: ${reason}` : ''}`;
}

/** No evidence of having started: offline (and excusable) once silent past the offline window. */
function notStarted({ p, t, age }: Seen, out: Phase = pending(t)): Verdict {
  const offline = age > p.offlineWindowMs;
  return {
    phase: offline ? { ...out, phase: 'offline', note: 'no ack within the offline window' } : out,
    thresholds: [p.offlineWindowMs],
  };
}

/** Started without an outcome: in flight and, past its confirm deadline, presumed failed. */
function startedWithoutOutcome(
  { p, t, age }: Seen,
  what: string,
  phase: 'activating' | 'confirming',
): Verdict {
  const out = { ...pending(t), inFlight: true };
  const presumed = `${what}, but no outcome within its confirm deadline: presumed failed`;
  return {
    phase:
      age > p.confirmMs
        ? { ...out, phase: 'failed', failure: 'presumed', note: presumed }
        : { ...out, phase, note: what },
    thresholds: [p.confirmMs],
  };
}

/** An ack about another rollout (or another target). */
function otherRolloutPhase(seen: Seen): Verdict {
  const { p, ack, t, age } = seen;
  if (ack.current !== p.target || ack.kind === 'failed' || ack.kind === 'rolled-back')
    return notStarted(seen);
  // Not about this rollout, so it could be replayed from an earlier release with the same target: it
  // counts only while fresh. Once the host acks this rollout, its own soak proof takes over.
  const stale = age > p.heartbeatExpiryMs;
  const phase: Phase = stale
    ? { ...pending(t), phase: 'healthy', note: 'runs the target but its heartbeat is stale' }
    : {
        ...pending(t),
        phase: 'converged',
        note: 'already runs the target',
        settled: true,
        done: true,
      };
  return { phase, thresholds: [p.heartbeatExpiryMs] };
}

/** An ack about this rollout and target. */
function rolloutPhase(seen: Seen): Verdict {
  const { ack, t } = seen;
  switch (ack.kind) {
    case 'failed':
    case 'rolled-back': {
      // A failure counts for the rest of the rollout, however old (no threshold: it holds forever).
      const note = described(ack.kind, ack.reason);
      const failed: Phase = {
        ...pending(t),
        phase: 'failed',
        note,
        done: true,
        failure: 'reported',
      };
      return { phase: failed, thresholds: [] };
    }
    case 'started':
    case 'activated':
      // The reason says how it started (e.g. rebooting into the target): shown, not interpreted.
      return startedWithoutOutcome(
        seen,
        described(ack.kind, ack.reason),
        ack.kind === 'started' ? 'activating' : 'confirming',
      );
    case 'deferred': {
      // Staged for the next boot: it may reboot into the target at any time, so it never becomes excusable.
      const note = described('deferred', ack.reason);
      return { phase: { ...pending(t), phase: 'deferred', note, inFlight: true }, thresholds: [] };
    }
    case 'blocked':
      return notStarted(seen, {
        ...pending(t),
        phase: 'blocked',
        note: described('blocked', ack.reason),
      });
    default:
      return healthPhase(seen);
  }
}

/** The note of a host whose soak has elapsed in its first healthy ack: the proof is its next ack. */
export const AWAITING_PROOF = 'its soak proof (an ack after its first healthy one) not yet seen';

/** A healthy / heartbeat ack about this rollout: soaked, soaking, or not yet switched. */
function healthPhase(seen: Seen): Verdict {
  const { p, ack, t, age, signed } = seen;
  const since = ack.healthySince === null ? null : parseAckTime(ack.healthySince);
  if (ack.current !== p.target) return notStarted(seen);
  if (since === null || since > signed)
    return startedWithoutOutcome(seen, 'switched, health not yet established', 'confirming');
  // Soak is what the host itself signed: continuous health from healthySince up to the ack's time.
  // A proof stays a proof however old the ack grows; staleness only says "health now unknown".
  const healthySeconds = Math.floor((t - since) / 1000);
  const freshness =
    age > p.heartbeatExpiryMs ? ', but its heartbeat is stale (health now unknown)' : '';
  // The proof is an ack signed after the one that started the health (t > since), even for a soak of 0:
  // an agent signs its first healthy ack before the control plane has confirmed it, and rolls back (a
  // switch, in flight again) when that read-back fails, so that ack proves nothing final. Any later one
  // was signed after the agent committed (agent/activation.ts confirmWindow; it signs the proof at once).
  const soaked = t > since && healthySeconds >= p.soakSeconds;
  const phase: Phase = {
    phase: soaked ? 'soaked' : 'healthy',
    note: soaked
      ? `soaked (${humanDuration(healthySeconds)} healthy)${freshness}`
      : healthySeconds >= p.soakSeconds
        ? `healthy, ${AWAITING_PROOF}${freshness}`
        : `healthy for ${soakProgress(healthySeconds, p.soakSeconds)}${freshness}`,
    lastAck: t,
    healthySeconds,
    // Started and not yet soaked: in flight until its soak proof or its failure arrives.
    inFlight: !soaked,
    done: soaked,
    settled: soaked,
    failure: null,
  };
  return { phase, thresholds: [p.heartbeatExpiryMs] };
}

/** The interval of `now` in which a phase holds: from the last threshold crossed to the next one. */
function validity(
  t: number,
  now: number,
  thresholds: readonly number[],
): { validFrom: number; validUntil: number } {
  // Age crosses threshold x when now > t + x, i.e. at now = t + x + 1.
  let validFrom = t;
  let validUntil = FOREVER;
  for (const x of thresholds) {
    const edge = t + x + 1;
    if (edge <= now) validFrom = Math.max(validFrom, edge);
    else validUntil = Math.min(validUntil, edge);
  }
  return { validFrom, validUntil };
}
