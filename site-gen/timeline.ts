// When each host started, activated, became healthy, soaked or failed in its channel's current rollout,
// read from its own signed acks (the ack log's history, or at least its latest ack). Linear in the
// number of acks: a 10,000-host fleet's timelines cost no more than reading its acks.
import type { ChannelPlan } from '../protocol/index.ts';
import { type AckRecord, parseAckTime } from '../reconciler/index.ts';

export interface HostTimeline {
  host: string;
  wave: number;
  /** ms since the epoch; null = not (yet) seen in the acks */
  startedAt: number | null;
  activatedAt: number | null;
  healthyAt: number | null;
  soakedAt: number | null;
  failedAt: number | null;
  failure: string | null;
  /** Already ran the target when first seen (no activation needed). */
  convergedAt: number | null;
  /** Latest deferred/blocked ack of this rollout: the host says it cannot proceed. */
  heldAt: number | null;
  held: string | null;
  /** Every ack's time and kind, for the per-host chart. */
  marks: { at: number; kind: AckRecord['kind'] }[];
}

export function hostTimeline(
  plan: ChannelPlan,
  host: string,
  acks: readonly AckRecord[],
): HostTimeline {
  const entry = plan.hosts[host];
  if (entry === undefined)
    throw new Error(`host ${host} is not in the plan of channel ${plan.channel}`);
  const soakMs = (plan.waves[entry.wave]?.soakSeconds ?? 0) * 1000;
  const t: HostTimeline = {
    host,
    wave: entry.wave,
    startedAt: null,
    activatedAt: null,
    healthyAt: null,
    soakedAt: null,
    failedAt: null,
    failure: null,
    convergedAt: null,
    heldAt: null,
    held: null,
    marks: [],
  };
  for (const a of acks) {
    const at = parseAckTime(a.time);
    t.marks.push({ at, kind: a.kind });
    const mine = a.rolloutId === plan.rolloutId && a.target === entry.target;
    if (!mine) {
      if (
        t.convergedAt === null &&
        t.startedAt === null &&
        a.current === entry.target &&
        a.kind !== 'failed' &&
        a.kind !== 'rolled-back'
      )
        t.convergedAt = at;
      continue;
    }
    switch (a.kind) {
      case 'started':
        t.startedAt ??= at;
        break;
      case 'activated':
        t.activatedAt ??= at;
        break;
      case 'failed':
      case 'rolled-back':
        if (t.failedAt === null) {
          t.failedAt = at;
          t.failure = `${a.kind}${a.reason ? `: ${a.reason}` : ''}`;
        }
        break;
      case 'deferred':
      case 'blocked':
        t.heldAt = at;
        t.held = `${a.kind}${a.reason ? `: ${a.reason}` : ''}`;
        break;
      default: {
        if (a.current !== entry.target || a.healthySince === null) break;
        const since = parseAckTime(a.healthySince);
        if (since > at) break;
        t.healthyAt ??= since;
        // Soak is what the host signed: continuous health from healthySince up to this ack.
        if (t.soakedAt === null && at - since >= soakMs) t.soakedAt = since + soakMs;
      }
    }
  }
  // A later stage proves the earlier ones happened even if their acks were not kept.
  t.activatedAt ??= t.healthyAt;
  t.startedAt ??= t.activatedAt ?? (t.failedAt !== null ? t.failedAt : null);
  return t;
}

/** Every host's timeline in wave order, names sorted; `timeline` may answer from an earlier build. */
export function channelTimelines(
  plan: ChannelPlan,
  history: ReadonlyMap<string, readonly AckRecord[]>,
  timeline: typeof hostTimeline = hostTimeline,
): HostTimeline[] {
  const out: HostTimeline[] = [];
  for (const w of plan.waves)
    for (const h of [...w.hosts].sort()) out.push(timeline(plan, h, history.get(h) ?? []));
  return out;
}

export interface WaveSpan {
  wave: number;
  hosts: number;
  firstStart: number | null;
  /** When the last host soaked, converged or failed; null while any host has done none of these. */
  settledAt: number | null;
  started: number;
  soaked: number;
  failed: number;
}

export function waveSpans(plan: ChannelPlan, timelines: readonly HostTimeline[]): WaveSpan[] {
  return plan.waves.map((w) => {
    const members = timelines.filter((t) => t.wave === w.index);
    let firstStart: number | null = null;
    let last = -Infinity;
    let soaked = 0;
    let started = 0;
    let failed = 0;
    for (const m of members) {
      if (m.startedAt !== null) {
        started++;
        firstStart = firstStart === null ? m.startedAt : Math.min(firstStart, m.startedAt);
      }
      if (m.failedAt !== null) failed++;
      const done = m.soakedAt ?? m.convergedAt;
      if (m.failedAt !== null) last = Math.max(last, m.failedAt);
      else if (done !== null) {
        soaked++;
        last = Math.max(last, done);
      }
    }
    const settled = members.length > 0 && soaked + failed === members.length;
    return {
      wave: w.index,
      hosts: members.length,
      firstStart,
      settledAt: settled ? last : null,
      started,
      soaked,
      failed,
    };
  });
}
