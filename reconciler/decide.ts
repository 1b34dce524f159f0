// decide(): what one host should do now. Pure: same input, same decision.
// Gate order (fixed; docs/architecture.md): recovery -> revoked -> (already on target: converged, or
// rollback-and-halt) -> not fresh -> quarantined -> halted -> channel edges -> earlier waves -> host edges
// -> disruption budget -> maintenance window -> switch inhibitor (defer) -> activate.
import { FleetContext, ReconcilerInputError } from './context.ts';
import type { DecideInput, Decision, FleetInput, RebootVerdict } from './types.ts';
import type { ChannelPlan, HostManifest } from '../protocol/schemas/release.ts';
import { maintenanceWindowAt } from './maintenance.ts';
import { humanDuration } from './time.ts';
import { waveLabel } from './words.ts';

function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/**
 * The reboot half of a `defer`: the channel's signed reboot policy at `now`. `in-maintenance-window` with
 * no windows never opens (the publisher refuses such a fleet; a hand-made plan fails closed).
 */
function rebootVerdict(plan: ChannelPlan, m: HostManifest, now: number): RebootVerdict {
  const allowed: RebootVerdict = { allowed: true, deadline: now + m.confirmDeadlineSeconds * 1000, rolloutId: m.rolloutId };
  switch (plan.reboot) {
    case 'allowed':
      return allowed;
    case 'in-maintenance-window': {
      if (plan.maintenanceWindows.length === 0) return { allowed: false, why: `reboot policy of channel ${plan.channel} is in-maintenance-window but it has no maintenance windows` };
      const w = maintenanceWindowAt(plan.maintenanceWindows, now);
      return w.open ? allowed : { allowed: false, why: `reboot policy of channel ${plan.channel} is in-maintenance-window: ${w.reason}` };
    }
    default:
      return { allowed: false, why: `reboot policy of channel ${plan.channel} is never: the target stays unstaged until a signed release allows a reboot (reboot: allowed or in-maintenance-window)` };
  }
}

/** A fleet evaluation that several decide() calls over the same FleetInput can share (e.g. one per poll instant). */
export type PreparedFleet = FleetContext;

export function prepareFleet(input: FleetInput): PreparedFleet {
  return new FleetContext(input);
}

function sameFleetInput(a: FleetInput, b: FleetInput): boolean {
  return a.now === b.now && a.plans === b.plans && a.budgets === b.budgets && a.revocations === b.revocations && a.acks === b.acks && a.tolerances === b.tolerances;
}

/**
 * `prepared` (optional) must come from prepareFleet() over the very same objects and `now` as `input`;
 * it only saves recomputing the fleet for every host that decides at the same instant.
 */
export function decide(input: DecideInput, prepared?: PreparedFleet): Decision {
  const { manifest: m, local, now } = input;
  if (prepared !== undefined && !sameFleetInput(prepared.input, input)) {
    throw new ReconcilerInputError('the prepared fleet was built from a different input (now, plans, budgets, revocations, acks or tolerances differ)');
  }
  let ctx = prepared;
  if (ctx === undefined) {
    ctx = new FleetContext(input);
    ctx.singleHost = true;
  }
  const plan = ctx.plan(m.channel);
  if (plan.rolloutId !== m.rolloutId || plan.hosts[m.host]?.target !== m.target || plan.hosts[m.host]?.wave !== m.wave) {
    throw new ReconcilerInputError(`manifest of ${m.host} does not match the plan of channel ${m.channel} (rollout id, target or wave differ)`);
  }
  const pending = local.pending;

  // Recovery: an unconfirmed activation past its deadline is undone before anything else is considered.
  if (pending !== null && now > pending.deadline) {
    return {
      kind: 'rollback',
      to: pending.previous,
      gate: 'recovery',
      reason: `activation of ${pending.target} was not confirmed before its deadline (${iso(pending.deadline)}): rolling back to generation ${pending.previous.generation} (${pending.previous.path})`,
    };
  }

  const hostRevocation = input.revocations.hosts.find((r) => r.host === m.host);
  if (hostRevocation !== undefined && ctx.isHostRevoked(m.host, m.hostKey)) {
    return { kind: 'refuse', gate: 'revoked', reason: `host ${m.host} is revoked (${hostRevocation.reason}): it may not activate anything` };
  }
  const closureRevocation = input.revocations.closures.find((c) => c.storePath === m.target);
  if (closureRevocation !== undefined) {
    if (pending !== null && pending.target === m.target) {
      return { kind: 'rollback', to: pending.previous, gate: 'revoked', reason: `target ${m.target} is revoked (${closureRevocation.reason}): undoing the unconfirmed activation` };
    }
    return { kind: 'refuse', gate: 'revoked', reason: `target ${m.target} is revoked (${closureRevocation.reason}): it will not be activated` };
  }

  if (pending !== null) {
    if (pending.target !== m.target) {
      return {
        kind: 'rollback',
        to: pending.previous,
        gate: 'recovery',
        reason: `the unconfirmed activation of ${pending.target} is no longer this host's signed target (${m.target}): rolling back to generation ${pending.previous.generation}`,
      };
    }
    return {
      kind: 'activate',
      target: m.target,
      deadline: pending.deadline,
      rolloutId: m.rolloutId,
      reason: `resuming the activation of ${m.target}: confirm before ${iso(pending.deadline)}`,
    };
  }

  if (local.current === m.target) {
    const ce = plan.onFailure === 'rollback-and-halt' ? ctx.channel(m.channel) : null;
    const wave = ce?.waves[m.wave];
    // Only failures the hosts signed roll a wave back; a failure presumed from missing evidence only halts.
    if (ce !== null && wave !== undefined && wave.halted && wave.failuresReported > wave.allowedFailures) {
      if (local.previous !== null) {
        return {
          kind: 'rollback',
          to: local.previous,
          gate: 'halted',
          reason: `${ctx.haltedReason(ce)}; policy rollback-and-halt: rolling ${waveLabel(m.wave)} back, to generation ${local.previous.generation} (${local.previous.path})`,
        };
      }
    }
    return { kind: 'converged', reason: `${m.host} runs its target ${m.target} (channel ${m.channel}, ${waveLabel(m.wave)})` };
  }

  if (input.freshness.status !== 'fresh') {
    const what = input.freshness.status === 'stale' ? 'the signed release chain is stale' : 'the release chain is not validly signed';
    return { kind: 'wait', gate: 'not-fresh', reason: `no new activations: ${what} (${input.freshness.reason})`, retryAfter: plan.signingIntervalSeconds };
  }

  const q = local.quarantine.find((e) => e.target === m.target && e.until > now);
  if (q !== undefined) {
    return {
      kind: 'wait',
      gate: 'quarantined',
      reason: `target ${m.target} is quarantined on this host until ${iso(q.until)} after a failed or rolled-back activation (clear it locally, or a newer release supersedes it)`,
      retryAfter: Math.max(1, Math.ceil((q.until - now) / 1000)),
    };
  }

  const hold = ctx.gatesFor(m.channel, m.host);
  if (hold !== null) return { kind: 'wait', gate: hold.gate, reason: hold.reason, retryAfter: hold.retryAfter };

  if (input.inhibitor !== null) {
    const reboot = rebootVerdict(plan, m, now);
    const next = reboot.allowed
      ? `the channel's reboot policy (${plan.reboot}) allows it now: stage it with boot, reboot, and confirm before ${iso(reboot.deadline)}`
      : `deferred: ${reboot.why}`;
    return { kind: 'defer', inhibitor: input.inhibitor, reboot, reason: `switching to ${m.target} needs a reboot (${input.inhibitor}); ${next}` };
  }

  const deadline = now + m.confirmDeadlineSeconds * 1000;
  return {
    kind: 'activate',
    target: m.target,
    deadline,
    rolloutId: m.rolloutId,
    reason: `${waveLabel(m.wave)} of channel ${m.channel} is open and every gate passed: activate ${m.target} and confirm within ${humanDuration(m.confirmDeadlineSeconds)}`,
  };
}
