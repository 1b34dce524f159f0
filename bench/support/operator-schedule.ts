// The operator bench's fleet schedule (bench/operator.bench.ts): when each host of the generated fleet
// posts which ack, as a function of the instant the history is taken up to. One place for it, so the
// generator that writes the fixture and the live minute that advances it (bench/support/
// live-minute.ts) produce the same acks, signed with the same keys.
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { ChannelPlan, SigningKey } from '../../protocol/index.ts';
import { hostKeyFor } from '../../tests/support/fleet-gen.ts';

export const MIN = 60_000;
/** The generator's seed: every host's signing key is hostKeyFor(OPERATOR_FLEET_SEED, host). */
export const OPERATOR_FLEET_SEED = 'operator-bench';
/** The release is published at this instant; the first wave starts two minutes later. */
export const OPERATOR_FLEET_START = Date.parse('2030-01-01T00:00:00Z');

export type StepKind = 'started' | 'activated' | 'healthy' | 'heartbeat' | 'failed';

export interface Step {
  kind: StepKind;
  at: number;
}

/** One wave's 10-minute slot: its channel's plan, its hosts in the plan's order, and its start. */
export interface WaveSlot {
  channel: string;
  plan: ChannelPlan;
  wave: number;
  hosts: readonly string[];
  t0: number;
  /** The last slot: the wave mid-rollout, with a failed host and silent ones. */
  last: boolean;
}

/** Every wave gets a 10-minute slot after the previous one, channels in name order (their edge order). */
export function waveSlots(plans: Record<string, ChannelPlan>): WaveSlot[] {
  const slots: WaveSlot[] = [];
  for (const channel of Object.keys(plans).sort()) {
    const plan = plans[channel]!;
    plan.waves.forEach((w, wave) => {
      const t0 = OPERATOR_FLEET_START + 2 * MIN + slots.length * 10 * MIN;
      slots.push({ channel, plan, wave, hosts: w.hosts, t0, last: false });
    });
  }
  slots.at(-1)!.last = true;
  return slots;
}

/** The instant the generated fixture is looked at: 4 minutes into the last wave's slot. */
export function fixtureEnd(slots: readonly WaveSlot[]): number {
  return slots.at(-1)!.t0 + 4 * MIN;
}

/**
 * The acks host number `i` of a wave slot has posted by `end`, oldest first, and the instant it became
 * healthy (its acks' healthySince); null for a host that never answers. Started, activated, healthy
 * (jittered by up to 29 s per host), then a heartbeat per minute through the 300 s soak, up to a
 * minute before `end`. In the last wave every 50th host never answers and the second one fails its
 * probes. A host whose soak ended well before `end` also posts one last heartbeat just before it, so a
 * finished wave still shows fresh soak proof.
 */
export function hostSchedule(
  slot: WaveSlot,
  i: number,
  end: number,
): { steps: Step[]; healthyAt: number } | null {
  if (slot.last && i % 50 === 49) return null;
  const j = (i % 30) * 1000;
  const healthyAt = slot.t0 + MIN + j;
  const steps: Step[] = [
    { kind: 'started', at: slot.t0 + j },
    { kind: 'activated', at: slot.t0 + 30_000 + j },
  ];
  if (slot.last && i === 1) steps.push({ kind: 'failed', at: healthyAt });
  else {
    steps.push({ kind: 'healthy', at: healthyAt });
    for (let t = healthyAt + MIN; t <= Math.min(healthyAt + 7 * MIN, end - MIN); t += MIN)
      steps.push({ kind: 'heartbeat', at: t });
    if (healthyAt + 7 * MIN < end - 2 * MIN)
      steps.push({ kind: 'heartbeat', at: end - 30_000 - j });
  }
  return { steps, healthyAt };
}

/**
 * Step number `seq` (1-based) of `host` in `slot`, chained to `prev`, signed with `key` (the host's:
 * hostKeyFor(OPERATOR_FLEET_SEED, host)).
 */
export function scheduledAck(
  slot: WaveSlot,
  host: string,
  step: Step,
  seq: number,
  prev: string | null,
  healthyAt: number,
  key: SigningKey,
): SignedAck {
  const target = slot.plan.hosts[host]!.target;
  return signAck(
    {
      type: 'ack',
      schemaVersion: 1,
      fleet: 'generated',
      host,
      seq,
      prev,
      time: isoTime(step.at),
      kind: step.kind,
      releaseVersion: slot.plan.releaseVersion,
      rolloutId: slot.plan.rolloutId,
      target,
      current: step.kind === 'started' ? null : target,
      healthySince:
        step.kind === 'healthy' || step.kind === 'heartbeat' ? isoTime(healthyAt) : null,
      probes: [],
      reason: step.kind === 'failed' ? 'probe http failed: connection refused' : null,
    },
    key,
  );
}

/** The acks of `steps` (from step number `from`, 0-based) chained after `prev`, signed in order. */
export function scheduledAcks(
  slot: WaveSlot,
  host: string,
  schedule: { steps: Step[]; healthyAt: number },
  from: number,
  prev: string | null,
  key: SigningKey = hostKeyFor(OPERATOR_FLEET_SEED, host),
): SignedAck[] {
  const acks: SignedAck[] = [];
  for (let n = from; n < schedule.steps.length; n++) {
    const ack = scheduledAck(slot, host, schedule.steps[n]!, n + 1, prev, schedule.healthyAt, key);
    prev = ackDigest(ack);
    acks.push(ack);
  }
  return acks;
}
