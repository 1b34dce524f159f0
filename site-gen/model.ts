// What the pages show, computed once per build: the reconciler's fleet view over the verified documents
// and acks (the same pure function every agent runs, so the dashboard gives the agents' own reasons),
// plus per-host ack facts and per-channel timelines.
import { fleetView, type AckRecord, type FleetView, type HostPhase, type HostView } from '../reconciler/index.ts';
import { parseAckTime } from '../reconciler/time.ts';
import { ackHistoryByHost, fleetInputOf, type AckHistory, type VerifiedRelease } from '../operator/load.ts';
import { channelTimelines, waveSpans, type HostTimeline, type WaveSpan } from './timeline.ts';

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
  /** Every verified ack and every rejection, with what was read. */
  acks: AckHistory;
  /** Each host's verified acks, oldest first, one per seq. */
  ackHistory: Map<string, AckRecord[]>;
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

export function buildFleetModel(release: VerifiedRelease, acks: AckHistory, now: number): FleetModel {
  const input = fleetInputOf(release, acks.acks, now);
  const view = fleetView(input);
  const latest = input.acks;
  const ackHistory = ackHistoryByHost(acks.acks);
  const phaseTotals = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<HostPhase, number>;
  const hosts: HostRow[] = view.hosts.map((h) => {
    phaseTotals[h.phase]++;
    const last = latest[h.host] ?? null;
    return { ...h, current: last?.current ?? null, latest: last, latestAt: last ? parseAckTime(last.time) : null };
  });
  hosts.sort(compareHosts);
  const channels = new Map<string, ChannelModel>();
  const timelineByHost = new Map<string, HostTimeline>();
  for (const [name, plan] of Object.entries(release.plans)) {
    const timelines = channelTimelines(plan, ackHistory);
    for (const t of timelines) timelineByHost.set(t.host, t);
    channels.set(name, { timelines, spans: waveSpans(plan, timelines) });
  }
  return { now, release, acks, ackHistory, view, hosts, byHost: new Map(hosts.map((h) => [h.host, h])), phaseTotals, channels, timelineByHost };
}

/** Hosts an operator must look at first, most severe first. */
export function attentionHosts(model: FleetModel): HostRow[] {
  const rank: Partial<Record<HostPhase, number>> = { failed: 0, blocked: 1, deferred: 2, offline: 3 };
  return model.hosts
    .filter((h) => rank[h.phase] !== undefined)
    .sort((a, b) => rank[a.phase]! - rank[b.phase]! || compareHosts(a, b));
}
