// What the pages show, computed once per build: the reconciler's fleet view over the verified documents
// and acks (the same pure function every agent runs, so the dashboard gives the agents' own reasons),
// plus per-host ack facts and per-channel timelines.
import { fleetView, type AckRecord, type FleetView, type HostPhase, type HostView } from '../reconciler/index.ts';
import { parseAckTime } from '../reconciler/time.ts';
import type { AckSet } from './acks.ts';
import { channelTimelines, waveSpans, type HostTimeline, type WaveSpan } from './timeline.ts';
import type { VerifiedRelease } from './verified-release.ts';

export interface HostRow extends HostView {
  /** What the host says it runs (its latest verified ack), null without acks. */
  current: string | null;
  latest: AckRecord | null;
  latestAt: number | null;
}

export interface ChannelModel {
  timelines: HostTimeline[];
  spans: WaveSpan[];
}

export interface FleetModel {
  now: number;
  release: VerifiedRelease;
  acks: AckSet;
  view: FleetView;
  hosts: HostRow[];
  byHost: Map<string, HostRow>;
  phaseTotals: Record<HostPhase, number>;
  channels: Map<string, ChannelModel>;
  timelineByHost: Map<string, HostTimeline>;
}

export const PHASES: HostPhase[] = ['pending', 'activating', 'confirming', 'healthy', 'soaked', 'converged', 'failed', 'deferred', 'offline', 'blocked'];

function compareHosts(a: HostView, b: HostView): number {
  return a.channel < b.channel ? -1 : a.channel > b.channel ? 1 : a.wave - b.wave || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0);
}

export function buildFleetModel(release: VerifiedRelease, acks: AckSet, now: number): FleetModel {
  const view = fleetView({ now, plans: release.plans, budgets: release.budgets, revocations: release.revocations, acks: acks.latest });
  const phaseTotals = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<HostPhase, number>;
  const hosts: HostRow[] = view.hosts.map((h) => {
    phaseTotals[h.phase]++;
    const latest = acks.latest[h.host] ?? null;
    return { ...h, current: latest?.current ?? null, latest, latestAt: latest ? parseAckTime(latest.time) : null };
  });
  hosts.sort(compareHosts);
  const channels = new Map<string, ChannelModel>();
  const timelineByHost = new Map<string, HostTimeline>();
  for (const [name, plan] of Object.entries(release.plans)) {
    const timelines = channelTimelines(plan, acks.history);
    for (const t of timelines) timelineByHost.set(t.host, t);
    channels.set(name, { timelines, spans: waveSpans(plan, timelines) });
  }
  return { now, release, acks, view, hosts, byHost: new Map(hosts.map((h) => [h.host, h])), phaseTotals, channels, timelineByHost };
}

/** Hosts an operator must look at first, most severe first. */
export function attentionHosts(model: FleetModel): HostRow[] {
  const rank: Partial<Record<HostPhase, number>> = { failed: 0, blocked: 1, deferred: 2, offline: 3 };
  return model.hosts
    .filter((h) => rank[h.phase] !== undefined)
    .sort((a, b) => rank[a.phase]! - rank[b.phase]! || compareHosts(a, b));
}
