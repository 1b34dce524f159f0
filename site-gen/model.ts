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
import {
  channelTimelines,
  hostTimeline,
  waveSpans,
  type HostTimeline,
  type WaveSpan,
} from './timeline.ts';
import type { ChannelPlan } from '../protocol/index.ts';
import { AgentConfig } from '../agent/index.ts';
import { detailPagePath, hostAnchor, withoutAges } from './components.ts';

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
  /** Its index in the fleet's order (FleetModel.hosts: channel, wave, name). */
  index: number;
  /** The detail page holding this host's section (site-relative, host-pages.ts). */
  page: string;
  /** Its section on that page: `page#h-<host>`. */
  href: string;
  /** What the pages without ages show of it (ModelMemo: kept across watch builds while unchanged). */
  stable: HostStable;
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
  /** A verified ack's identity (AckHistory.digests): what the pages showing it are keyed by. */
  ackId(ack: AckRecord): string;
  /** Per-host results kept for the next build (a fresh one in a one-shot build). */
  memo: ModelMemo;
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

/** Where a host is in the plan: what orders the fleet and places it on a detail page. */
type PlanPlace = Pick<HostView, 'host' | 'channel' | 'wave'>;

function compareHosts(a: PlanPlace, b: PlanPlace): number {
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
function placeOnDetailPages(sorted: (PlanPlace & { page: string; href: string })[]): void {
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

/**
 * Per-host results kept from one build for the next (watch mode), all for one verified release
 * (everything is forgotten when the release is another; the same documents verified again, as the
 * periodic rebuild does, keep them):
 * - where each host goes (its place in the fleet's order and its detail page): the plan's alone;
 * - what each host's verified ack history gives (timeline, newest failure evidence, compliance view,
 *   the history's ack identities), reused while the history holds the same ack records, compared one
 *   by one by identity (an ack read again is another record, so it is derived again);
 * - each host's stable facts (HostStable: what the pages without ages show of it), reused while its
 *   verdict without ages, its latest ack and its history are the same, with the page inputs computed
 *   from them (a list row's key, a host section's inputs);
 * - each stable page's inputs digest, reused while its other inputs and its hosts' stable facts are.
 * A reused value is the one the same inputs gave: nothing is trusted that the build would not compute.
 */
export class ModelMemo {
  private release: VerifiedRelease | null = null;
  private releaseKey = '';
  private placement: Map<string, Placement> | null = null;
  private histories = new Map<string, HostDerived>();
  private stables = new Map<string, HostStable>();
  private pages = new Map<string, { prefix: string; hosts: HostStable[]; digest: string }>();
  private grouped: { input: readonly AckRecord[]; byHost: Map<string, AckRecord[]> } | null = null;

  /** Forgets everything kept for another release. */
  private for(release: VerifiedRelease): void {
    if (this.release === release) return;
    this.release = release;
    // The same signed documents verified again (watch mode's periodic rebuild): everything kept
    // still holds. The timestamp pins the release index (every plan and manifest) and the
    // revocations; the root is named by its fleet and version.
    const key = releaseKey(release);
    if (key === this.releaseKey) return;
    this.releaseKey = key;
    this.placement = null;
    this.grouped = null;
    this.histories.clear();
    this.stables.clear();
    this.pages.clear();
  }

  placed(release: VerifiedRelease, place: () => Map<string, Placement>): Map<string, Placement> {
    this.for(release);
    return (this.placement ??= place());
  }

  /**
   * read-side ackHistoryByHost(acks), regrouping only the hosts with an ack past the part of `acks`
   * that is the previous input's (by identity: watch mode's ack feed keeps the log's records and
   * appends, the latest-ack files' follow). A host's history depends only on its own acks in input
   * order, so every other host's is the previous one. The map is not in host order.
   */
  historiesOf(release: VerifiedRelease, acks: readonly AckRecord[]): Map<string, AckRecord[]> {
    this.for(release);
    const before = this.grouped;
    let byHost: Map<string, AckRecord[]>;
    if (before === null) byHost = ackHistoryByHost(acks);
    else {
      let same = 0;
      const shorter = Math.min(before.input.length, acks.length);
      while (same < shorter && before.input[same] === acks[same]) same++;
      const changed = new Set<string>();
      for (let i = same; i < before.input.length; i++) changed.add(before.input[i]!.host);
      for (let i = same; i < acks.length; i++) changed.add(acks[i]!.host);
      byHost = new Map(before.byHost);
      for (const host of changed) byHost.delete(host);
      if (changed.size > 0)
        for (const [host, history] of ackHistoryByHost(acks.filter((a) => changed.has(a.host))))
          byHost.set(host, history);
    }
    this.grouped = { input: acks, byHost };
    return byHost;
  }

  /** What `history` gives, computed by `derive` unless this host had the same history before. */
  derived(
    release: VerifiedRelease,
    host: string,
    history: readonly AckRecord[],
    derive: () => HostDerived,
  ): HostDerived {
    this.for(release);
    const kept = this.histories.get(host);
    if (kept !== undefined && sameRecords(kept.history, history)) return kept;
    const d = derive();
    this.histories.set(host, d);
    return d;
  }

  /** The host's stable facts: the kept entry while verdict, latest ack and derived history are the same. */
  stable(
    host: string,
    verdict: readonly Verdict[],
    latest: AckRecord | null,
    derived: HostDerived,
  ): HostStable {
    const kept = this.stables.get(host);
    if (
      kept !== undefined &&
      kept.latest === latest &&
      kept.derived === derived &&
      sameValues(kept.verdictValues, verdict)
    )
      return kept;
    const s = new HostStable(verdict, latest, derived);
    this.stables.set(host, s);
    return s;
  }

  /**
   * A stable page's inputs digest: `digest()` unless the page had the same `prefix` (its inputs other
   * than its hosts) and the same hosts' stable entries in the previous build.
   */
  pageInputs(path: string, prefix: string, hosts: HostStable[], digest: () => string): string {
    const kept = this.pages.get(path);
    if (
      kept !== undefined &&
      kept.prefix === prefix &&
      kept.hosts.length === hosts.length &&
      kept.hosts.every((h, i) => h === hosts[i])
    )
      return kept.digest;
    const d = digest();
    this.pages.set(path, { prefix, hosts, digest: d });
    return d;
  }
}

/** What identifies a verified release's signed documents (ModelMemo keeps its results per release). */
function releaseKey(r: VerifiedRelease): string {
  return JSON.stringify([
    r.root.fleet,
    r.root.version,
    r.timestamp.release,
    r.timestamp.revocations,
    r.timestamp.controls ?? null,
  ]);
}

/** A host's place: its index in the fleet's order (channel, wave, name) and its detail page. */
export interface Placement {
  index: number;
  page: string;
  href: string;
}

/** What the pages derive from one host's verified acks and the release alone (ModelMemo). */
export interface HostDerived {
  history: readonly AckRecord[];
  /** Its timeline in its channel's plan (null: in no plan). */
  timeline: HostTimeline | null;
  newestFailure: QuarantineEvidence | undefined;
  compliance: HostComplianceView | null;
  /** The history's ack identities (AckHistory.digests), space-separated: part of its section's inputs. */
  ackIds: string;
}

/** One value of a host's verdict without ages (HostStable). */
type Verdict = string | number | boolean | null;

/**
 * What the pages without ages show of a host besides the release: its verdict without ages, its
 * latest ack and what its history gives. The page inputs computed from them are kept with them.
 */
export class HostStable {
  /** lists.ts: the digest of its row's facts. */
  rowKey?: string;
  /** host-pages.ts: its section's inputs. */
  sectionInputs?: string;
  private json?: string;

  constructor(
    /** channel, wave, target, phase, detail and reason without ages, gate, excused, current. */
    readonly verdictValues: readonly Verdict[],
    readonly latest: AckRecord | null,
    readonly derived: HostDerived,
  ) {}

  /** The verdict as JSON (computed when first asked: most hosts' page inputs are kept). */
  get verdict(): string {
    return (this.json ??= JSON.stringify(this.verdictValues));
  }
}

function sameValues(a: readonly Verdict[], b: readonly Verdict[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameRecords(a: readonly AckRecord[], b: readonly AckRecord[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Each host's place: the fleet's order (compareHosts) cut into detail pages (placeOnDetailPages). */
function placement(hosts: readonly HostView[]): Map<string, Placement> {
  const rows = hosts.map((h) => ({
    host: h.host,
    channel: h.channel,
    wave: h.wave,
    page: '',
    href: '',
  }));
  rows.sort(compareHosts);
  placeOnDetailPages(rows);
  return new Map(rows.map((h, index) => [h.host, { index, page: h.page, href: h.href }]));
}

/** A host's row: its verdict (HostView), latest ack, place and stable facts. */
function hostRow(
  h: HostView,
  last: AckRecord | null,
  place: Placement,
  derived: HostDerived,
  memo: ModelMemo,
): HostRow {
  const current = last?.current ?? null;
  // What the pages without ages show of the verdict (HostStable), compared value by value.
  const verdict = [
    h.channel,
    h.wave,
    h.target,
    h.phase,
    withoutAges(h.detail),
    h.gate,
    withoutAges(h.reason ?? ''),
    h.excused,
    current,
  ];
  // Field by field, not a spread: one object shape for 10,000 rows is several times faster to build.
  return {
    host: h.host,
    channel: h.channel,
    wave: h.wave,
    target: h.target,
    phase: h.phase,
    detail: h.detail,
    lastAck: h.lastAck,
    healthySeconds: h.healthySeconds,
    gate: h.gate,
    reason: h.reason,
    excused: h.excused,
    current,
    latest: last,
    latestAt: last ? parseAckTime(last.time) : null,
    index: place.index,
    page: place.page,
    href: place.href,
    stable: memo.stable(h.host, verdict, last, derived),
  };
}

/** Each channel's timelines (the hosts' derived ones, computed in `planOf` their plan) and wave spans. */
function channelModels(
  release: VerifiedRelease,
  ackHistory: ReadonlyMap<string, readonly AckRecord[]>,
  planOf: ReadonlyMap<string, ChannelPlan>,
  byHost: ReadonlyMap<string, HostRow>,
): { channels: Map<string, ChannelModel>; timelineByHost: Map<string, HostTimeline> } {
  const channels = new Map<string, ChannelModel>();
  const timelineByHost = new Map<string, HostTimeline>();
  for (const [name, plan] of Object.entries(release.plans)) {
    const timelines = channelTimelines(
      plan,
      ackHistory,
      (p, host, history) =>
        (p === planOf.get(host) ? byHost.get(host)?.stable.derived.timeline : null) ??
        hostTimeline(p, host, history),
    );
    for (const t of timelines) timelineByHost.set(t.host, t);
    channels.set(name, { timelines, spans: waveSpans(plan, timelines) });
  }
  return { channels, timelineByHost };
}

export function buildFleetModel(
  release: VerifiedRelease,
  acks: AckHistory,
  now: number,
  memo: ModelMemo = new ModelMemo(),
): FleetModel {
  const input = fleetInputOf(release, acks.acks, now);
  const view = fleetView(input);
  const ackHistory = memo.historiesOf(release, acks.acks);
  // Built when first asked: after one new ack watch mode derives little (ModelMemo).
  let ackIds: Map<AckRecord, string> | null = null;
  const ackId = (a: AckRecord): string =>
    (ackIds ??= new Map(acks.acks.map((x, i) => [x, acks.digests[i]!]))).get(a)!;
  const planOf = new Map<string, ChannelPlan>();
  for (const plan of Object.values(release.plans))
    for (const host of Object.keys(plan.hosts)) planOf.set(host, plan);
  const derive = (host: string, history: readonly AckRecord[]): HostDerived => {
    const plan = planOf.get(host);
    return {
      history,
      timeline: plan === undefined ? null : hostTimeline(plan, host, history),
      newestFailure: quarantineEvidence(history)[0],
      compliance: hostCompliance(release, host, history),
      ackIds: history.map(ackId).join(' '),
    };
  };
  const places = memo.placed(release, () => placement(view.hosts));
  const phaseTotals = Object.fromEntries(HOST_PHASES.map((p) => [p, 0])) as Record<
    HostPhase,
    number
  >;
  const hosts: HostRow[] = new Array<HostRow>(view.hosts.length);
  for (const h of view.hosts) {
    phaseTotals[h.phase]++;
    const history = ackHistory.get(h.host) ?? [];
    const derived = memo.derived(release, h.host, history, () => derive(h.host, history));
    const place = places.get(h.host)!;
    hosts[place.index] = hostRow(h, input.acks[h.host] ?? null, place, derived, memo);
  }
  const byHost = new Map(hosts.map((h) => [h.host, h]));
  const quarantines = new Map<string, QuarantineEvidence>();
  const compliance = new Map<string, HostComplianceView>();
  for (const h of hosts) {
    const d = h.stable.derived;
    if (d.newestFailure !== undefined && d.newestFailure.untilByDefault > now)
      quarantines.set(h.host, d.newestFailure);
    if (d.compliance !== null) compliance.set(h.host, d.compliance);
  }
  return {
    now,
    release,
    acks,
    ackHistory,
    ackId,
    memo,
    view,
    hosts,
    byHost,
    phaseTotals,
    ...channelModels(release, ackHistory, planOf, byHost),
    quarantines,
    compliance,
  };
}

/** The hosts of each channel of a model, in fleet order, computed once. */
const channelsOf = new WeakMap<FleetModel, Map<string, HostRow[]>>();

export function hostsOfChannel(model: FleetModel, channel: string): HostRow[] {
  let byChannel = channelsOf.get(model);
  if (byChannel === undefined) {
    channelsOf.set(model, (byChannel = new Map()));
    for (const h of model.hosts) {
      let rows = byChannel.get(h.channel);
      if (rows === undefined) byChannel.set(h.channel, (rows = []));
      rows.push(h);
    }
  }
  return byChannel.get(channel) ?? [];
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
