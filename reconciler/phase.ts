// How one host's phase in one channel rollout derives from its latest verified ack and `now`.
// This is the only place that interprets acks; the rules are documented in docs/architecture.md.
import type { ChannelPlan } from '../protocol/schemas/release.ts';
import type { AckRecord, HostPhase, Tolerances } from './types.ts';
import { humanDuration, parseAckTime, soakProgress } from './time.ts';

export interface DerivedPhase {
  phase: HostPhase;
  detail: string;
  /** ms, signed time of the ack the phase rests on (null when none counts) */
  lastAck: number | null;
  /** Signed continuous health in seconds (healthy/heartbeat acks on the target). */
  healthySeconds: number;
  /** Holds a disruption-budget slot: started and neither soaked nor failed (nor gone past its deadline). */
  inFlight: boolean;
  /** Counts towards wave completion: soaked (fresh) or already on target (fresh). */
  settled: boolean;
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

function offline(detail: string, lastAck: number | null): DerivedPhase {
  return { phase: 'offline', detail, lastAck, healthySeconds: 0, inFlight: false, settled: false };
}

export function derivePhase(p: PhaseParams, ack: AckRecord | undefined, now: number, revoked: boolean): DerivedPhase {
  if (revoked) return offline('host revoked: its acks no longer count', null);
  if (ack === undefined) return offline('no ack received', null);
  const signed = parseAckTime(ack.time);
  if (signed > now + p.skewMs) return offline(`latest ack is signed ${humanDuration((signed - now) / 1000)} in the future, beyond the clock-skew tolerance: ignored`, null);
  // Within the tolerance a future-dated ack counts as signed now, so a fast clock cannot stretch a soak.
  const t = Math.min(signed, now);
  const age = now - t;
  const ago = `last ack ${humanDuration(age / 1000)} ago`;
  const mine = ack.rolloutId === p.rolloutId && ack.target === p.target;

  if (!mine) {
    if (age > p.offlineWindowMs) return offline(`no ack within the offline window (${ago})`, t);
    if (ack.current === p.target && ack.kind !== 'failed' && ack.kind !== 'rolled-back') {
      if (age <= p.heartbeatExpiryMs) return { phase: 'converged', detail: `already runs the target (${ago})`, lastAck: t, healthySeconds: 0, inFlight: false, settled: true };
      return { phase: 'healthy', detail: `runs the target but its heartbeat is stale (${ago})`, lastAck: t, healthySeconds: 0, inFlight: false, settled: false };
    }
    return { phase: 'pending', detail: `not started (${ago})`, lastAck: t, healthySeconds: 0, inFlight: false, settled: false };
  }

  switch (ack.kind) {
    case 'failed':
    case 'rolled-back':
      return { phase: 'failed', detail: `${ack.kind}${ack.reason ? `: ${ack.reason}` : ''}`, lastAck: t, healthySeconds: 0, inFlight: false, settled: false };
    case 'started':
    case 'activated':
      if (age > p.inFlightOfflineMs) return offline(`${ack.kind} but silent past its confirm deadline and the offline window (${ago})`, t);
      return {
        phase: ack.kind === 'started' ? 'activating' : 'confirming',
        detail: `${ack.kind} (${ago})`,
        lastAck: t,
        healthySeconds: 0,
        inFlight: true,
        settled: false,
      };
    case 'deferred':
    case 'blocked':
      if (age > p.offlineWindowMs) return offline(`no ack within the offline window (${ago})`, t);
      return { phase: ack.kind, detail: `${ack.kind}${ack.reason ? `: ${ack.reason}` : ''} (${ago})`, lastAck: t, healthySeconds: 0, inFlight: false, settled: false };
    case 'healthy':
    case 'heartbeat': {
      if (age > p.offlineWindowMs) return offline(`no ack within the offline window (${ago})`, t);
      if (ack.current !== p.target) return { phase: 'pending', detail: `not started (${ago})`, lastAck: t, healthySeconds: 0, inFlight: false, settled: false };
      const since = ack.healthySince === null ? null : parseAckTime(ack.healthySince);
      if (since === null || since > signed) {
        return { phase: 'confirming', detail: `switched, health not yet established (${ago})`, lastAck: t, healthySeconds: 0, inFlight: true, settled: false };
      }
      // Soak is what the host itself signed: continuous health from healthySince up to the ack's time.
      const healthySeconds = Math.floor((t - since) / 1000);
      const soaked = healthySeconds >= p.soakSeconds;
      if (age > p.heartbeatExpiryMs) {
        return {
          phase: 'healthy',
          detail: `${soaked ? 'soaked' : soakProgress(healthySeconds, p.soakSeconds)}, but its heartbeat is stale (${ago})`,
          lastAck: t,
          healthySeconds,
          inFlight: !soaked,
          settled: false,
        };
      }
      if (soaked) return { phase: 'soaked', detail: `soaked (${humanDuration(healthySeconds)} healthy)`, lastAck: t, healthySeconds, inFlight: false, settled: true };
      return { phase: 'healthy', detail: `healthy for ${soakProgress(healthySeconds, p.soakSeconds)}`, lastAck: t, healthySeconds, inFlight: true, settled: false };
    }
  }
}
