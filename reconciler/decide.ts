// decide(): what one host should do now. Pure: same input, same decision.
// Gate order (fixed; docs/architecture.md "Gate order", numbered as there): recovery -> revoked -> (already on target: converged, or
// rollback-and-halt) -> compliance (own manifest fails a static control in enforce) -> not fresh -> quarantined -> paused (operator control) -> halted -> channel edges -> earlier waves -> host edges
// -> disruption budget -> maintenance window -> switch inhibitor (defer) -> activate.
import { FleetContext, ReconcilerInputError } from './context.ts';
import type { DecideInput, Decision, FleetInput, LocalState, RebootVerdict } from './types.ts';
import type { ChannelPlan, HostManifest } from '../protocol/index.ts';
import { maintenanceWindowAt } from './maintenance.ts';
import { humanDuration } from './time.ts';
import { waveLabel } from './words.ts';
import { staticControlRefusal } from './compliance.ts';

function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

/**
 * The reboot half of a `defer`: the channel's signed reboot policy at `now`. `in-maintenance-window` with
 * no windows never opens (the publisher refuses such a fleet; a hand-made plan fails closed).
 */
function rebootVerdict(plan: ChannelPlan, m: HostManifest, now: number): RebootVerdict {
  const allowed: RebootVerdict = {
    allowed: true,
    deadline: now + m.confirmDeadlineSeconds * 1000,
    rolloutId: m.rolloutId,
  };
  switch (plan.reboot) {
    case 'allowed':
      return allowed;
    case 'in-maintenance-window': {
      if (plan.maintenanceWindows.length === 0)
        return {
          allowed: false,
          why: `reboot policy of channel ${plan.channel} is in-maintenance-window but it has no maintenance windows`,
        };
      const w = maintenanceWindowAt(plan.maintenanceWindows, now);
      // The closed branch is unreachable through decide(): gate 11 (maintenance-window) holds every host of
      // the channel while its windows are closed, before gate 12 asks for this verdict.
      // Stryker disable next-line ConditionalExpression: `true` is equivalent (see above)
      return w.open
        ? allowed
        : {
            allowed: false,
            // Stryker disable next-line StringLiteral: unreachable (see above)
            why: `reboot policy of channel ${plan.channel} is in-maintenance-window: ${w.reason}`,
          };
    }
    default:
      return {
        allowed: false,
        why:
          `reboot policy of channel ${plan.channel} is never: the target stays unstaged ` +
          `until a signed release allows a reboot (reboot: allowed or ` +
          `in-maintenance-window)`,
      };
  }
}

/** A fleet evaluation that several decide() calls over the same FleetInput can share (e.g. one per poll instant). */
export type PreparedFleet = FleetContext;

export function prepareFleet(input: FleetInput): PreparedFleet {
  return new FleetContext(input);
}

function sameFleetInput(a: FleetInput, b: FleetInput): boolean {
  return (
    a.now === b.now &&
    a.plans === b.plans &&
    a.budgets === b.budgets &&
    a.revocations === b.revocations &&
    a.acks === b.acks &&
    a.tolerances === b.tolerances &&
    (a.controls ?? null) === (b.controls ?? null)
  );
}

/**
 * `prepared` (optional) must come from prepareFleet() over the very same objects and `now` as `input`;
 * it only saves recomputing the fleet for every host that decides at the same instant.
 *
 * The gates run in the fixed order of docs/architecture.md ("Gate order"); the first one with something
 * to say decides. The order is the safety argument: recovery and revocation come before anything that
 * could start an activation, and a pending activation is resolved before the gates that only hold new starts.
 */
export function decide(input: DecideInput, prepared?: PreparedFleet): Decision {
  const h = hostUnderDecision(input, prepared);
  return (
    recoveryGate(h) ?? // 0. recovery: an unconfirmed activation past its deadline
    revokedGate(h) ?? // 1. revoked host or target
    pendingActivation(h) ?? // (1, cont.) a superseded pending activation rolls back; a current one resumes
    alreadyOnTarget(h) ?? // 2. converged (or rolled back under rollback-and-halt)
    complianceGate(h) ?? // 2a. compliance: the manifest fails a static control of an enforce channel
    notFreshGate(h) ?? // 3. not-fresh
    quarantinedGate(h) ?? // 4. quarantined
    fleetGates(h) ?? // 5-11. paused, halted, channel-edge, earlier-waves, host-edge, disruption-budget, maintenance-window
    switchInhibitorGate(h) ?? // 12. switch-inhibitor: defer
    activate(h) // 13. every gate passed
  );
}

/**
 * Whether decide() for this host can depend on its peers' acks (`DecideInput.acks`), from the gates that
 * come before any that reads them, in decide()'s order: recovery (0), revoked (1) and a pending
 * activation (1, cont.) read the host's own state, the revocations and the manifest only, and a pending
 * activation always ends the walk there; already on target (2) reads the fleet's acks only under
 * rollback-and-halt, and only when there is a previous generation to roll back to. Every later gate may
 * read them. `plan` is the host's own channel's plan. The agent skips the peers' wave bundles when this
 * is false (agent/cycle.ts); tests/reconciler/reads-peer-acks.test.ts checks it against decide().
 */
export function decisionReadsPeerAcks(
  plan: ChannelPlan,
  local: LocalState,
  manifest: HostManifest,
): boolean {
  if (local.pending !== null) return false;
  if (local.current !== manifest.target) return true;
  return plan.onFailure === 'rollback-and-halt' && local.previous !== null;
}

/** One host's decision inputs, checked against each other, plus the fleet evaluation the gates read. */
interface HostUnderDecision {
  input: DecideInput;
  m: HostManifest;
  local: DecideInput['local'];
  now: number;
  ctx: FleetContext;
  plan: ChannelPlan;
}

function hostUnderDecision(
  input: DecideInput,
  prepared: PreparedFleet | undefined,
): HostUnderDecision {
  const { manifest: m, local, now } = input;
  if (prepared !== undefined && !sameFleetInput(prepared.input, input)) {
    throw new ReconcilerInputError(
      'the prepared fleet was built from a different input (now, plans, budgets, revocations, acks, tolerances or controls differ)',
    );
  }
  let ctx = prepared;
  // Stryker disable next-line ConditionalExpression: `true` builds a fresh context from the same input as the prepared one (same decisions); `false` fails every test
  if (ctx === undefined) {
    ctx = new FleetContext(input);
    // Stryker disable next-line BooleanLiteral: both budget counts give the same answer (tests/reconciler/memo.test.ts)
    ctx.singleHost = true;
  }
  const plan = ctx.plan(m.channel);
  if (
    plan.rolloutId !== m.rolloutId ||
    plan.hosts[m.host]?.target !== m.target ||
    plan.hosts[m.host]?.wave !== m.wave
  ) {
    throw new ReconcilerInputError(
      `manifest of ${m.host} does not match the plan of channel ${m.channel} (rollout id, target or wave differ)`,
    );
  }
  return { input, m, local, now, ctx, plan };
}

/** 0. An unconfirmed activation past its deadline is undone before anything else is considered. */
function recoveryGate({ local: { pending }, now }: HostUnderDecision): Decision | null {
  if (pending === null || now <= pending.deadline) return null;
  return {
    kind: 'rollback',
    to: pending.previous,
    gate: 'recovery',
    reason:
      `activation of ${pending.target} was not confirmed before its deadline ` +
      `(${iso(pending.deadline)}): rolling back to ` +
      `generation ${pending.previous.generation} (${pending.previous.path})`,
  };
}

/** 1. A revoked host activates nothing; a revoked target is never activated, and undone while unconfirmed. */
function revokedGate({ input, m, ctx, local: { pending } }: HostUnderDecision): Decision | null {
  // The entry that applies to this key: the host may also have revocations of keys it no longer uses.
  const hostRevocation = ctx.hostRevocation(m.host, m.hostKey);
  if (hostRevocation !== undefined) {
    return {
      kind: 'refuse',
      gate: 'revoked',
      reason: `host ${m.host} is revoked (${hostRevocation.reason}): it may not activate anything`,
    };
  }
  const closureRevocation = input.revocations.closures.find((c) => c.storePath === m.target);
  if (closureRevocation === undefined) return null;
  if (pending !== null && pending.target === m.target) {
    return {
      kind: 'rollback',
      to: pending.previous,
      gate: 'revoked',
      reason: `target ${m.target} is revoked (${closureRevocation.reason}): undoing the unconfirmed activation`,
    };
  }
  return {
    kind: 'refuse',
    gate: 'revoked',
    reason: `target ${m.target} is revoked (${closureRevocation.reason}): it will not be activated`,
  };
}

/**
 * A pending activation within its deadline: rolled back when the signed target moved on, otherwise resumed
 * with the same deadline. Before the hold-only gates (paused, halted, ...): they stop new starts, never a
 * confirmation in flight.
 */
function pendingActivation({ m, local: { pending } }: HostUnderDecision): Decision | null {
  if (pending === null) return null;
  if (pending.target !== m.target) {
    return {
      kind: 'rollback',
      to: pending.previous,
      gate: 'recovery',
      reason:
        `the unconfirmed activation of ${pending.target} is no longer this host's ` +
        `signed target (${m.target}): rolling back to ` +
        `generation ${pending.previous.generation}`,
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

/** 2. Already on target: converged, unless rollback-and-halt rolls this host's failed wave back. */
function alreadyOnTarget({ m, local, ctx, plan }: HostUnderDecision): Decision | null {
  if (local.current !== m.target) return null;
  const ce = plan.onFailure === 'rollback-and-halt' ? ctx.channel(m.channel) : null;
  const wave = ce?.waves[m.wave];
  // Only failures the hosts signed roll a wave back; a failure presumed from missing evidence only halts.
  if (
    ce !== null &&
    wave !== undefined &&
    wave.halted &&
    wave.failuresReported > wave.allowedFailures
  ) {
    if (local.previous !== null) {
      return {
        kind: 'rollback',
        to: local.previous,
        gate: 'halted',
        reason:
          `${ctx.haltedReason(ce)}; policy rollback-and-halt: ` +
          `rolling ${waveLabel(m.wave)} back, to generation ${local.previous.generation} ` +
          `(${local.previous.path})`,
      };
    }
  }
  return {
    kind: 'converged',
    reason: `${m.host} runs its target ${m.target} (channel ${m.channel}, ${waveLabel(m.wave)})`,
  };
}

/**
 * 2a. Defence in depth: the publisher refuses to sign a manifest failing a static control of an enforce
 * channel; should one be signed anyway (the check bypassed), the host refuses to start it. After
 * "already on target" (a host that runs it starts nothing) and after a pending activation resumed.
 */
function complianceGate({ m }: HostUnderDecision): Decision | null {
  const reason = staticControlRefusal(m);
  return reason === null ? null : { kind: 'refuse', gate: 'compliance', reason };
}

/** 3. No new activation on a stale or badly signed release chain (never a rollback either). */
function notFreshGate({ input: { freshness }, plan }: HostUnderDecision): Decision | null {
  if (freshness.status === 'fresh') return null;
  const what =
    freshness.status === 'stale'
      ? 'the signed release chain is stale'
      : 'the release chain is not validly signed';
  return {
    kind: 'wait',
    gate: 'not-fresh',
    reason: `no new activations: ${what} (${freshness.reason})`,
    retryAfter: plan.signingIntervalSeconds,
  };
}

/** 4. A target that failed or was rolled back on this host waits out its local quarantine. */
function quarantinedGate({ m, local, now }: HostUnderDecision): Decision | null {
  const q = local.quarantine.find((e) => e.target === m.target && e.until > now);
  if (q === undefined) return null;
  return {
    kind: 'wait',
    gate: 'quarantined',
    reason:
      `target ${m.target} is quarantined on this host until ${iso(q.until)} after a ` +
      `failed or rolled-back activation (clear it locally, or a newer release ` +
      `supersedes it)`,
    retryAfter: Math.max(1, Math.ceil((q.until - now) / 1000)),
  };
}

/** 5-11. The gates that depend on the rest of the fleet, in their order (FleetContext.gatesFor). */
function fleetGates({ m, ctx }: HostUnderDecision): Decision | null {
  const hold = ctx.gatesFor(m.channel, m.host);
  return hold === null
    ? null
    : { kind: 'wait', gate: hold.gate, reason: hold.reason, retryAfter: hold.retryAfter };
}

/** 12. A switch that needs a reboot is deferred, with the channel's reboot verdict. */
function switchInhibitorGate({
  input: { inhibitor },
  m,
  plan,
  now,
}: HostUnderDecision): Decision | null {
  if (inhibitor === null) return null;
  const reboot = rebootVerdict(plan, m, now);
  const next = reboot.allowed
    ? `the channel's reboot policy (${plan.reboot}) allows it now: stage it with boot, reboot, and confirm before ${iso(reboot.deadline)}`
    : `deferred: ${reboot.why}`;
  return {
    kind: 'defer',
    inhibitor,
    reboot,
    reason: `switching to ${m.target} needs a reboot (${inhibitor}); ${next}`,
  };
}

/** 13. Every gate passed. */
function activate({ m, now }: HostUnderDecision): Decision {
  const deadline = now + m.confirmDeadlineSeconds * 1000;
  return {
    kind: 'activate',
    target: m.target,
    deadline,
    rolloutId: m.rolloutId,
    reason:
      `${waveLabel(m.wave)} of channel ${m.channel} is open and every gate passed: ` +
      `activate ${m.target} and confirm ` +
      `within ${humanDuration(m.confirmDeadlineSeconds)}`,
  };
}
