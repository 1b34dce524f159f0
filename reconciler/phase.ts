// How one host's phase in one channel rollout derives from its latest verified ack and `now`.
// This is the only place that interprets acks; the rules are documented in docs/architecture.md.
// A derived phase stays the same between threshold crossings (heartbeat expiry, offline window), so it
// carries the interval in which it holds and callers cache it per ack object (reconciler/context.ts):
// re-deriving 100k phases at every instant is what a fleet view or a simulator would otherwise spend its time on.
import type { ChannelPlan } from '../protocol/schemas/release.ts';
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
  /** Holds a disruption-budget slot: started and neither soaked nor failed (nor gone past its deadline). */
  inFlight: boolean;
  /** Counts towards wave completion: soaked (fresh) or already on target (fresh). */
  settled: boolean;
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
  /** An in-flight host (started/activated) is offline only after both the offline window and its confirm deadline. */
  inFlightOfflineMs: number;
  skewMs: number;
}

export function phaseParams(plan: ChannelPlan, target: string, soakSeconds: number, tol: Tolerances): PhaseParams {
  const skewMs = tol.clockSkewSeconds * 1000;
  return {
    rolloutId: plan.rolloutId,
    target,
    soakSeconds,
    heartbeatExpiryMs: tol.heartbeatExpiryFactor * plan.heartbeatSeconds * 1000,
    offlineWindowMs: plan.offlineWindowSeconds * 1000,
    inFlightOfflineMs: Math.max(plan.offlineWindowSeconds * 1000, plan.confirmDeadlineSeconds * 1000 + skewMs),
    skewMs,
  };
}

/** One line for people: the phase's note and how old the ack is. */
export function describePhase(ph: DerivedPhase, now: number): string {
  return ph.lastAck === null ? ph.note : `${ph.note} (last ack ${humanDuration((now - ph.lastAck) / 1000)} ago)`;
}

const FOREVER = Number.MAX_SAFE_INTEGER;
const NO_ACK_REVOKED: Omit<DerivedPhase, 'validFrom' | 'validUntil'> = { phase: 'offline', note: 'host revoked: its acks no longer count', lastAck: null, healthySeconds: 0, inFlight: false, settled: false };
const NO_ACK: Omit<DerivedPhase, 'validFrom' | 'validUntil'> = { phase: 'offline', note: 'no ack received', lastAck: null, healthySeconds: 0, inFlight: false, settled: false };

/**
 * The phase of a host given its latest ack. Pure; the result carries the interval of `now` in which it
 * holds, so callers may reuse it for the same ack object within that interval.
 */
export function derivePhase(p: PhaseParams, ack: AckRecord | undefined, now: number, revoked: boolean): DerivedPhase {
  if (revoked) return { ...NO_ACK_REVOKED, validFrom: -FOREVER, validUntil: FOREVER };
  if (ack === undefined) return { ...NO_ACK, validFrom: -FOREVER, validUntil: FOREVER };
  return compute(p, ack, now);
}

function compute(p: PhaseParams, ack: AckRecord, now: number): DerivedPhase {
  const signed = parseAckTime(ack.time);
  if (signed > now + p.skewMs) {
    return { ...NO_ACK, note: `latest ack is signed ${humanDuration((signed - now) / 1000)} in the future, beyond the clock-skew tolerance: ignored`, validFrom: now, validUntil: now + 1 };
  }
  if (signed > now) {
    // Within the tolerance a future-dated ack counts as signed now, so a fast clock cannot stretch a soak.
    // Its phase changes with every `now` until its signed time: not cacheable.
    return { ...derive(p, ack, now, now, signed), validFrom: now, validUntil: now + 1 };
  }
  return derive(p, ack, signed, now, signed);
}

/** Phase for an ack signed at `t` (<= now), with the interval of `now` in which it holds. */
function derive(p: PhaseParams, ack: AckRecord, t: number, now: number, signed: number): DerivedPhase {
  const age = now - t;
  const mine = ack.rolloutId === p.rolloutId && ack.target === p.target;
  let phase: HostPhase;
  let note: string;
  let healthySeconds = 0;
  let inFlight = false;
  let settled = false;
  // The age thresholds this ack's phase depends on: it holds until `now` crosses the next one.
  let t1 = p.offlineWindowMs;
  let t2 = -1;
  if (!mine) {
    t2 = p.heartbeatExpiryMs;
    if (age > p.offlineWindowMs) { phase = 'offline'; note = 'no ack within the offline window'; }
    else if (ack.current === p.target && ack.kind !== 'failed' && ack.kind !== 'rolled-back') {
      if (age <= p.heartbeatExpiryMs) { phase = 'converged'; note = 'already runs the target'; settled = true; }
      else { phase = 'healthy'; note = 'runs the target but its heartbeat is stale'; }
    } else { phase = 'pending'; note = 'not started'; }
  } else {
    switch (ack.kind) {
      case 'failed':
      case 'rolled-back':
        // A failure counts for the rest of the rollout, however old.
        return { phase: 'failed', note: `${ack.kind}${ack.reason ? `: ${ack.reason}` : ''}`, lastAck: t, healthySeconds: 0, inFlight: false, settled: false, validFrom: t, validUntil: FOREVER };
      case 'started':
      case 'activated':
        t1 = p.inFlightOfflineMs;
        if (age > p.inFlightOfflineMs) { phase = 'offline'; note = `${ack.kind} but silent past its confirm deadline and the offline window`; }
        else { phase = ack.kind === 'started' ? 'activating' : 'confirming'; note = ack.kind; inFlight = true; }
        break;
      case 'deferred':
      case 'blocked':
        if (age > p.offlineWindowMs) { phase = 'offline'; note = 'no ack within the offline window'; }
        else { phase = ack.kind; note = `${ack.kind}${ack.reason ? `: ${ack.reason}` : ''}`; }
        break;
      default: {
        // healthy / heartbeat
        t2 = p.heartbeatExpiryMs;
        const since = ack.healthySince === null ? null : parseAckTime(ack.healthySince);
        if (age > p.offlineWindowMs) { phase = 'offline'; note = 'no ack within the offline window'; }
        else if (ack.current !== p.target) { phase = 'pending'; note = 'not started'; }
        else if (since === null || since > signed) { phase = 'confirming'; note = 'switched, health not yet established'; inFlight = true; }
        else {
          // Soak is what the host itself signed: continuous health from healthySince up to the ack's time.
          healthySeconds = Math.floor((t - since) / 1000);
          const soaked = healthySeconds >= p.soakSeconds;
          if (age > p.heartbeatExpiryMs) {
            phase = 'healthy';
            note = `${soaked ? 'soaked' : `healthy for ${soakProgress(healthySeconds, p.soakSeconds)}`}, but its heartbeat is stale`;
            inFlight = !soaked;
          } else if (soaked) { phase = 'soaked'; note = `soaked (${humanDuration(healthySeconds)} healthy)`; settled = true; }
          else { phase = 'healthy'; note = `healthy for ${soakProgress(healthySeconds, p.soakSeconds)}`; inFlight = true; }
        }
      }
    }
  }
  // Age crosses threshold x when now > t + x, i.e. at now = t + x + 1.
  let validFrom = t;
  let validUntil = FOREVER;
  for (const x of t2 < 0 ? [t1] : [t1, t2]) {
    const edge = t + x + 1;
    if (edge <= now) validFrom = Math.max(validFrom, edge);
    else validUntil = Math.min(validUntil, edge);
  }
  return { phase, note, lastAck: t, healthySeconds, inFlight, settled, validFrom, validUntil };
}
