// Deterministic wave and budget resolution. Hosts of a channel are ordered by sha256(channel + "/" + host)
// so that count/percent waves pick a spread of hosts that does not depend on naming, yet is the same on
// every run. Each host lands in exactly one wave of its own channel: the first wave that claims it.
// resolveFleet assumes the references were checked (validate.ts reports what does not resolve).
import {
  sha256Hex,
  matchesSelector,
  type Selector,
  type SelectorSubject,
  type Threshold,
} from '../protocol/index.ts';
import type { Fleet, FleetPolicy, FleetWave } from './fleet-schema.ts';
import { computeRolloutId } from './rollout-id.ts';
import { channelCompliance } from './compliance.ts';

export type WaveMembership = 'selector' | 'count' | 'percent' | 'remainder';

export interface ResolvedWave {
  index: number;
  membership: WaveMembership;
  soakSeconds: number;
  failureThreshold: Threshold;
  offlineExcuseLimit: number;
  /** In the channel's stable order. */
  hosts: string[];
}

export interface ResolvedChannel {
  name: string;
  policy: string;
  strategy: FleetPolicy['strategy'];
  onFailure: FleetPolicy['onFailure'];
  deferredHosts: FleetPolicy['deferredHosts'];
  /** The channel's reboot policy (not part of the rollout id: see rollout-id.ts). */
  reboot: Fleet['channels'][string]['reboot'];
  waves: ResolvedWave[];
  /** Hosts of the channel no wave claimed (validate.ts turns these into errors). */
  unassigned: string[];
  /** Host edges whose both ends are in this channel. */
  hostEdges: { before: string; after: string }[];
  /** Channels that must complete their rollout first (channel edges into this channel), sorted. */
  gatedBy: string[];
  rolloutId: string;
}

export interface ResolvedBudget {
  id: string;
  selector: Selector;
  maxInFlight: number;
  maxInFlightPct: number | null;
  /** Every fleet host the selector matches, across channels, sorted by name. */
  hosts: string[];
}

export interface ResolvedFleet {
  channels: Record<string, ResolvedChannel>;
  budgets: ResolvedBudget[];
}

/** The wave used when an all-at-once policy lists none. */
export const DEFAULT_SINGLE_WAVE: FleetWave = {
  soakSeconds: 0,
  failureThreshold: { count: 0 },
  offlineExcuseLimit: 0,
};

export function membershipOf(w: FleetWave): WaveMembership {
  if (w.selector !== undefined) return 'selector';
  if (w.count !== undefined) return 'count';
  if (w.percent !== undefined) return 'percent';
  return 'remainder';
}

export function stableHostOrder(channel: string, hosts: readonly string[]): string[] {
  const keyed = hosts.map((h) => ({
    h,
    k: sha256Hex(`${channel}/${h}`),
  }));
  keyed.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
  return keyed.map((x) => x.h);
}

export function subjectOf(fleet: Fleet, name: string): SelectorSubject {
  const h = fleet.hosts[name]!;
  return { name, channel: h.channel, tags: h.tags };
}

/** percent of a channel: rounded up, at least 1 (a wave asked for must not silently vanish). */
export function percentOf(pct: number, total: number): number {
  return Math.max(1, Math.ceil((pct * total) / 100));
}

export function policyWaves(policy: FleetPolicy): FleetWave[] {
  return policy.strategy === 'all-at-once' && policy.waves.length === 0
    ? [DEFAULT_SINGLE_WAVE]
    : policy.waves;
}

export function resolveChannelWaves(
  fleet: Fleet,
  channel: string,
  channelHosts: readonly string[],
  policy: FleetPolicy,
): { waves: ResolvedWave[]; unassigned: string[] } {
  let remaining = stableHostOrder(channel, channelHosts);
  const total = remaining.length;
  const waves: ResolvedWave[] = policyWaves(policy).map((w, index) => {
    const membership = membershipOf(w);
    let taken: string[];
    if (membership === 'selector')
      taken = remaining.filter((h) => matchesSelector(w.selector!, subjectOf(fleet, h)));
    else if (membership === 'count') taken = remaining.slice(0, w.count!);
    else if (membership === 'percent')
      taken = total === 0 ? [] : remaining.slice(0, percentOf(w.percent!, total));
    else taken = remaining;
    if (taken.length > 0) {
      const claimed = new Set(taken);
      remaining = remaining.filter((h) => !claimed.has(h));
    }
    return {
      index,
      membership,
      soakSeconds: w.soakSeconds,
      failureThreshold: w.failureThreshold,
      offlineExcuseLimit: w.offlineExcuseLimit,
      hosts: taken,
    };
  });
  return { waves, unassigned: remaining };
}

export function hostsByChannel(fleet: Fleet): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const c of Object.keys(fleet.channels)) by.set(c, []);
  for (const [name, h] of Object.entries(fleet.hosts)) by.get(h.channel)?.push(name);
  return by;
}

export function resolveBudget(fleet: Fleet, b: Fleet['disruptionBudgets'][number]): ResolvedBudget {
  const hosts = Object.keys(fleet.hosts)
    .filter((h) => matchesSelector(b.selector, subjectOf(fleet, h)))
    .sort();
  const maxInFlight = b.maxInFlight ?? percentOf(b.maxInFlightPct ?? 0, hosts.length);
  return {
    id: b.id,
    selector: b.selector,
    maxInFlight,
    maxInFlightPct: b.maxInFlightPct ?? null,
    hosts,
  };
}

export function resolveFleet(fleet: Fleet): ResolvedFleet {
  const byChannel = hostsByChannel(fleet);
  const edgesByChannel = new Map<string, { before: string; after: string }[]>();
  for (const e of fleet.hostEdges) {
    const c = fleet.hosts[e.before]?.channel;
    if (c === undefined || fleet.hosts[e.after]?.channel !== c) continue;
    let list = edgesByChannel.get(c);
    if (!list) edgesByChannel.set(c, (list = []));
    list.push({ before: e.before, after: e.after });
  }
  const channels: Record<string, ResolvedChannel> = {};
  for (const [name, ch] of Object.entries(fleet.channels)) {
    const policy = fleet.policies[ch.policy];
    if (!policy)
      throw new Error(`channel ${name}: unknown policy ${ch.policy} (validate the fleet first)`);
    const { waves, unassigned } = resolveChannelWaves(
      fleet,
      name,
      byChannel.get(name) ?? [],
      policy,
    );
    const hostEdges = edgesByChannel.get(name) ?? [];
    const gatedBy = [
      ...new Set(fleet.channelEdges.filter((e) => e.after === name).map((e) => e.before)),
    ].sort();
    const targets: Record<string, string> = {};
    for (const h of byChannel.get(name) ?? []) targets[h] = fleet.hosts[h]!.target;
    const rolloutId = computeRolloutId({
      fleet: fleet.fleet,
      channel: name,
      strategy: policy.strategy,
      onFailure: policy.onFailure,
      deferredHosts: policy.deferredHosts,
      waves,
      targets,
      hostEdges,
      gatedBy,
      compliance: channelCompliance(fleet, name),
    });
    channels[name] = {
      name,
      policy: ch.policy,
      strategy: policy.strategy,
      onFailure: policy.onFailure,
      deferredHosts: policy.deferredHosts,
      reboot: ch.reboot,
      waves,
      unassigned,
      hostEdges,
      gatedBy,
      rolloutId,
    };
  }
  return { channels, budgets: fleet.disruptionBudgets.map((b) => resolveBudget(fleet, b)) };
}
