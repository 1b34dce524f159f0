// What the pages show, computed once per build: the reconciler's fleet view over the verified documents
// and acks (the same pure function every agent runs, so the dashboard gives the agents' own reasons),
// plus per-host ack facts and per-channel timelines.
import {
  fleetView,
  type AckRecord,
  type FleetView,
  type HostPhase,
  type HostView,
  parseAckTime,
  HOST_PHASES,
} from '../reconciler/index.ts';
import {
  ackHistoryByHost,
  fleetInputOf,
  hostCompliance,
  type AckHistory,
  type HostComplianceView,
  type VerifiedRelease,
} from '../read-side/index.ts';
import { channelTimelines, waveSpans, type HostTimeline, type WaveSpan } from './timeline.ts';
import { AgentConfig } from '../agent/index.ts';
import { detailPagePath, hostAnchor } from './components.ts';

/**
 * Quarantine lives in each agent's state, so the dashboard knows it only from the host's signed acks: a
 * `failed` or `rolled-back` ack names the target the agent then quarantined and why. How long is the
 * agent's config (quarantineHours), not signed anywhere; the pages assume the default and say so.
 */
export const DEFAULT_QUARANTINE_HOURS: number = AgentConfig.shape.quarantineHours.parse(undefined);

export interface QuarantineEvidence {
  kind: 'failed' | 'rolled-back';
  seq: number;
  /** Signed time of the ack (ms): when the agent quarantined the closure. */
  at: number;
  /** The closure the agent quarantined (the ack's target), null if the ack names none. */
  target: string | null;
  reason: string | null;
  failedProbes: { name: string; detail: string }[];
  /** at + the default quarantine duration: until when a default-configured agent refuses the closure. */
  untilByDefault: number;
}

/** Every failed / rolled-back ack of a host, newest first: what its agent quarantined, as signed. */
export function quarantineEvidence(history: readonly AckRecord[]): QuarantineEvidence[] {
  const out: QuarantineEvidence[] = [];
  for (let i = history.length - 1; i >= 0; i--) {
    const a = history[i]!;
    if (a.kind !== 'failed' && a.kind !== 'rolled-back') continue;
    const at = parseAckTime(a.time);
    out.push({
      kind: a.kind,
      seq: a.seq,
      at,
      target: a.target,
      reason: a.reason,
      failedProbes: a.probes.filter((p) => !p.ok).map((p) => ({ name: p.name, detail: p.detail })),
      untilByDefault: at + DEFAULT_QUARANTINE_HOURS * 3600_000,
    });
  }
  return out;
}

export interface HostRow extends HostView {
  /** What the host says it runs (its latest verified ack), null without acks. */
  current: string | null;
  latest: AckRecord | null;
  latestAt: number | null;
  /** The detail page holding this host's section (site-relative, host-pages.ts). */
  page: string;
  /** Its section on that page: `page#h-<host>`. */
  href: string;
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
  /** Each verified ack's identity (AckHistory.digests): what the pages showing it are keyed by. */
  ackIds: Map<AckRecord, string>;
  view: FleetView;
  hosts: HostRow[];
  byHost: Map<string, HostRow>;
  phaseTotals: Record<HostPhase, number>;
  channels: Map<string, ChannelModel>;
  timelineByHost: Map<string, HostTimeline>;
  /** Hosts whose newest failure ack is within the default quarantine duration of `now`: that evidence. */
  quarantines: Map<string, QuarantineEvidence>;
  /** Hosts whose channel names compliance frameworks: their controls (verified manifest + newest signed evidence). */
  compliance: Map<string, HostComplianceView>;
}

function compareHosts(a: HostView, b: HostView): number {
  return a.channel < b.channel
    ? -1
    : a.channel > b.channel
      ? 1
      : a.wave - b.wave || (a.host < b.host ? -1 : a.host > b.host ? 1 : 0);
}

/**
 * Each host's detail page: the hosts of one wave in name order, HOSTS_PER_DETAIL_PAGE per page. Only
 * the signed plan decides it, so an ack never moves a host to another page.
 */
function placeOnDetailPages(sorted: HostRow[]): void {
  let wave = '';
  let index = 0;
  for (const h of sorted) {
    const w = `${h.channel}\n${h.wave}`;
    index = w === wave ? index + 1 : 0;
    wave = w;
    h.page = detailPagePath(h.channel, h.wave, index);
    h.href = `${h.page}#${hostAnchor(h.host)}`;
  }
}

export function buildFleetModel(
  release: VerifiedRelease,
  acks: AckHistory,
  now: number,
): FleetModel {
  const input = fleetInputOf(release, acks.acks, now);
  const view = fleetView(input);
  const latest = input.acks;
  const ackHistory = ackHistoryByHost(acks.acks);
  const phaseTotals = Object.fromEntries(HOST_PHASES.map((p) => [p, 0])) as Record<
    HostPhase,
    number
  >;
  const hosts: HostRow[] = view.hosts.map((h) => {
    phaseTotals[h.phase]++;
    const last = latest[h.host] ?? null;
    return {
      ...h,
      current: last?.current ?? null,
      latest: last,
      latestAt: last ? parseAckTime(last.time) : null,
      page: '',
      href: '',
    };
  });
  hosts.sort(compareHosts);
  placeOnDetailPages(hosts);
  const channels = new Map<string, ChannelModel>();
  const timelineByHost = new Map<string, HostTimeline>();
  for (const [name, plan] of Object.entries(release.plans)) {
    const timelines = channelTimelines(plan, ackHistory);
    for (const t of timelines) timelineByHost.set(t.host, t);
    channels.set(name, { timelines, spans: waveSpans(plan, timelines) });
  }
  const quarantines = new Map<string, QuarantineEvidence>();
  for (const h of hosts) {
    const newest = quarantineEvidence(ackHistory.get(h.host) ?? [])[0];
    if (newest !== undefined && newest.untilByDefault > now) quarantines.set(h.host, newest);
  }
  const compliance = new Map<string, HostComplianceView>();
  for (const h of hosts) {
    const view = hostCompliance(release, h.host, ackHistory.get(h.host) ?? []);
    if (view !== null) compliance.set(h.host, view);
  }
  return {
    now,
    release,
    acks,
    ackHistory,
    ackIds: new Map(acks.acks.map((a, i) => [a, acks.digests[i]!])),
    view,
    hosts,
    byHost: new Map(hosts.map((h) => [h.host, h])),
    phaseTotals,
    channels,
    timelineByHost,
    quarantines,
    compliance,
  };
}

/** attentionHosts of a model, computed once (the overview and every channel page list them). */
const attentionOf = new WeakMap<FleetModel, HostRow[]>();

/** Hosts an operator must look at first, most severe first. */
export function attentionHosts(model: FleetModel): HostRow[] {
  let hosts = attentionOf.get(model);
  if (hosts === undefined) attentionOf.set(model, (hosts = rankAttention(model)));
  return hosts;
}

function rankAttention(model: FleetModel): HostRow[] {
  const rank: Partial<Record<HostPhase, number>> = {
    failed: 0,
    blocked: 1,
    deferred: 2,
    offline: 3,
  };
  return model.hosts
    .filter((h) => rank[h.phase] !== undefined)
    .sort((a, b) => rank[a.phase]! - rank[b.phase]! || compareHosts(a, b));
}
