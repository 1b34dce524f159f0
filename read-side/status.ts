// `nixfleet status`: the fleet view of a verified tree at one instant, as data (for --json) and as text.
// Everything shown comes from the verified release and verified acks through the reconciler's
// fleetView, i.e. exactly what the agents compute; nothing is inferred here.
// Numbering: the JSON keeps the protocol's 0-based wave indexes; text for people says "wave 1" for the
// first wave everywhere (waveLabel). Every instant in the JSON is an ISO string (second precision).
import type { AckRecord, ChannelView, FleetView, HostView } from '../reconciler/index.ts';
import { parseIsoTime } from '../protocol/index.ts';
import type { AckRejection, FleetState } from './load.ts';
import { age, duration, iso, listWithMore, shortStorePath, table, waveLabel } from './format.ts';
import { UnknownSubject } from './subject.ts';
import { ackHistoryByHost } from './acks.ts';
import {
  channelCompliance,
  channelComplianceLine,
  controlNames,
  failingControls,
  hostCompliance,
  renderHostCompliance,
  type ChannelCompliance,
  type FailingControl,
  type HostComplianceView,
} from './compliance.ts';

export interface StatusHost extends Omit<HostView, 'lastAck'> {
  /** When the host's latest verified ack was signed (ISO), null: never. */
  lastAck: string | null;
  /** The closure the host's latest verified ack says it runs (null: no ack, or not stated). */
  current: string | null;
  lastAckKind: AckRecord['kind'] | null;
  lastAckSeq: number | null;
  lastAckReason: string | null;
  /** The host's controls: only where its manifest was verified (`--host`); null otherwise or without frameworks. */
  compliance: HostComplianceView | null;
  /** Its failing controls (without a verified manifest: the runtime results of its latest ack). */
  failingControls: FailingControl[];
}

export interface StatusReport extends Omit<FleetView, 'now' | 'hosts'> {
  fleet: string;
  /** The instant the fleet was evaluated at (ISO). */
  at: string;
  /** Where the tree was read: a directory or the control plane URL. */
  source: string;
  release: { version: number; issuedAt: string; rootVersion: number };
  /**
   * `fresh`, or `stale`: the timestamp expired (hosts activate nothing new) and this is the last verified
   * state, every signature checked as of `verifiedAsOf` (the timestamp's last valid second); exit 3.
   */
  freshness:
    | { state: 'fresh' }
    | { state: 'stale'; code: string; file: string; detail: string; verifiedAsOf: string };
  /** `secondsLeft` is negative once expired. */
  timestamp: { issuedAt: string; expires: string; secondsLeft: number };
  hosts: StatusHost[];
  /** `--problems`: channels, waves, hosts and budgets are only those needing attention. */
  problemsOnly: boolean;
  /**
   * `scope` (`--host`): the acks were read for that host's view only: its channel's hosts, the gating
   * channels' and its budgets' members (read-side/scope.ts); null: every host's.
   */
  acks: {
    verified: number;
    rejected: AckRejection[];
    scope: { channels: string[]; hosts: number } | null;
  };
  /** Per channel shown that has compliance facts: frameworks, mode (when a manifest was verified), failing controls. */
  compliance: ChannelCompliance[];
  findings: { revokedHosts: { host: string; detail: string }[]; unlistedManifests: string[] };
}

export interface StatusFilter {
  channel?: string;
  host?: string;
  /** Only what needs attention (`--problems`): see needsAttention. */
  problems?: boolean;
}

/**
 * What `--problems` keeps: failed, deferred or blocked hosts and offline hosts a wave waits for (not
 * excused); halted waves and waves with any of those; channels holding such a wave or halted; budgets
 * over their limit. Everything else is working as planned.
 */
const PROBLEM_PHASES: ReadonlySet<HostView['phase']> = new Set(['failed', 'deferred', 'blocked']);

export function hostNeedsAttention(h: HostView): boolean {
  return PROBLEM_PHASES.has(h.phase) || (h.phase === 'offline' && !h.excused);
}

function waveNeedsAttention(w: ChannelView['waves'][number]): boolean {
  return (
    w.state === 'halted' || w.counts.failed > 0 || w.counts.deferred > 0 || w.counts.blocked > 0
  );
}

/** The channel with only its waves that need attention; null when it needs none. */
function channelProblems(c: ChannelView, offlineBlocking: ReadonlySet<string>): ChannelView | null {
  const waves = c.waves.filter(
    (w) => waveNeedsAttention(w) || offlineBlocking.has(`${c.channel}\u0000${w.index}`),
  );
  return c.state === 'halted' || waves.length > 0 ? { ...c, waves } : null;
}

export function statusReport(state: FleetState, filter: StatusFilter = {}): StatusReport {
  const { release, view, input } = state;
  const compliance = complianceOf(state);
  const selected = selectSubject(state, filter);
  const { channels, hosts, budgets } = filter.problems
    ? onlyProblems(selected, view.budgets, compliance.failing)
    : { ...selected, budgets: view.budgets };
  return {
    fleet: release.root.fleet,
    at: iso(view.now),
    source: release.treeRoot,
    release: {
      version: release.index.version,
      issuedAt: release.index.issuedAt,
      rootVersion: release.root.version,
    },
    freshness: freshnessOf(state),
    timestamp: {
      issuedAt: release.timestamp.issuedAt,
      expires: release.timestamp.expires,
      secondsLeft: Math.floor((parseIsoTime(release.timestamp.expires) - view.now) / 1000),
    },
    channels,
    // Every field written out (not `...h` and then more): a spread followed by new properties costs
    // V8 a map transition per object, ~0.1 s over 10,000 hosts (docs/benchmarks.md "operator").
    hosts: hosts.map((h): StatusHost => {
      const ack = input.acks[h.host];
      return {
        host: h.host,
        channel: h.channel,
        wave: h.wave,
        target: h.target,
        phase: h.phase,
        detail: h.detail,
        lastAck: h.lastAck === null ? null : iso(h.lastAck),
        healthySeconds: h.healthySeconds,
        gate: h.gate,
        reason: h.reason,
        excused: h.excused,
        current: ack?.current ?? null,
        lastAckKind: ack?.kind ?? null,
        lastAckSeq: ack?.seq ?? null,
        lastAckReason: ack?.reason ?? null,
        compliance: compliance.views.get(h.host) ?? null,
        failingControls: compliance.failing.get(h.host)!,
      };
    }),
    budgets,
    problemsOnly: filter.problems === true,
    acks: {
      verified: state.acks.acks.length,
      rejected: state.acks.rejected,
      scope:
        state.scope === null
          ? null
          : { channels: state.scope.channels, hosts: state.scope.hosts.size },
    },
    compliance: channelCompliance(
      hostsOfChannels(release.plans, channels),
      input.acks,
      compliance.views,
    ),
    findings: {
      revokedHosts: release.report.revokedHosts.map((r) => ({ host: r.host, detail: r.detail })),
      unlistedManifests: release.report.unlistedManifests,
    },
  };
}

/**
 * Every host of these channels in the fleet view's order (by wave, then position): a one-host view's
 * `view.hosts` holds its own row only, and a channel's compliance line counts all of them.
 */
function hostsOfChannels(
  plans: FleetState['release']['plans'],
  channels: readonly ChannelView[],
): { host: string; channel: string }[] {
  const out: { host: string; channel: string }[] = [];
  for (const { channel } of channels)
    for (const w of plans[channel]!.waves) for (const host of w.hosts) out.push({ host, channel });
  return out;
}

/** Each verified manifest's controls view, and every host's failing controls as its latest ack shows them. */
function complianceOf(state: FleetState): {
  views: Map<string, HostComplianceView | null>;
  failing: Map<string, ReturnType<typeof failingControls>>;
} {
  const { release, view, input } = state;
  // Controls need the host's verified manifest (only `--host` verifies one) and its acks as read.
  const history =
    release.manifests.size > 0
      ? ackHistoryByHost(state.acks.acks.filter((a) => release.manifests.has(a.host)))
      : null;
  const views = new Map<string, HostComplianceView | null>();
  for (const host of release.manifests.keys())
    views.set(host, hostCompliance(release, host, history?.get(host) ?? []));
  // A loop, not a Map of mapped pairs: one pair array per host less (10,000 in a fleet view).
  const failing = new Map<string, ReturnType<typeof failingControls>>();
  for (const h of view.hosts)
    failing.set(h.host, failingControls(views.get(h.host) ?? null, input.acks[h.host] ?? null));
  return { views, failing };
}

/** The channels and hosts `--channel` / `--host` select (an unknown one is an UnknownSubject). */
function selectSubject(
  state: FleetState,
  filter: StatusFilter,
): { channels: ChannelView[]; hosts: HostView[] } {
  const { release, view } = state;
  let channels: ChannelView[] = view.channels;
  let hosts: HostView[] = view.hosts;
  if (filter.channel !== undefined) {
    if (!release.plans[filter.channel])
      throw new UnknownSubject(
        `no channel "${filter.channel}" in release ${release.index.version} ` +
          `(channels: ${Object.keys(release.plans).sort().join(', ')})`,
      );
    channels = channels.filter((c) => c.channel === filter.channel);
    hosts = hosts.filter((h) => h.channel === filter.channel);
  }
  if (filter.host !== undefined) {
    const h = hosts.find((x) => x.host === filter.host);
    if (!h)
      throw new UnknownSubject(
        `no host "${filter.host}" in release ${release.index.version}` +
          `${filter.channel ? ` channel ${filter.channel}` : ''}`,
      );
    hosts = [h];
    channels = channels.filter((c) => c.channel === h.channel);
  }
  return { channels, hosts };
}

/** `--problems`: hosts, waves, channels and budgets that need attention (failing controls included). */
function onlyProblems(
  selected: { channels: ChannelView[]; hosts: HostView[] },
  budgets: StatusReport['budgets'],
  failing: Map<string, readonly unknown[]>,
): { channels: ChannelView[]; hosts: HostView[]; budgets: StatusReport['budgets'] } {
  const hosts = selected.hosts.filter(
    (h) => hostNeedsAttention(h) || failing.get(h.host)!.length > 0,
  );
  const offlineBlocking = new Set(
    hosts.filter((h) => h.phase === 'offline').map((h) => `${h.channel}\u0000${h.wave}`),
  );
  const failingChannels = new Set(
    hosts.filter((h) => failing.get(h.host)!.length > 0).map((h) => h.channel),
  );
  const channels = selected.channels
    .map((c) =>
      failingChannels.has(c.channel)
        ? (channelProblems(c, offlineBlocking) ?? { ...c, waves: [] })
        : channelProblems(c, offlineBlocking),
    )
    .filter((c) => c !== null);
  return { channels, hosts, budgets: budgets.filter((b) => b.inFlight > b.max) };
}

function freshnessOf(state: FleetState): StatusReport['freshness'] {
  return state.stale === null
    ? { state: 'fresh' }
    : {
        state: 'stale',
        code: state.stale.failure.code,
        file: state.stale.failure.file,
        detail: state.stale.failure.detail,
        verifiedAsOf: iso(state.stale.verifiedAsOf),
      };
}

function waveProgress(w: ChannelView['waves'][number]): string {
  const c = w.counts;
  const done = c.soaked + c.converged;
  const parts = [`${done}/${w.hosts} done`];
  const inFlight = c.activating + c.confirming;
  if (inFlight) parts.push(`${inFlight} activating`);
  if (c.healthy) parts.push(`${c.healthy} soaking`);
  if (c.pending) parts.push(`${c.pending} pending`);
  if (c.failed) parts.push(`${c.failed} failed (${w.allowedFailures} allowed)`);
  if (c.offline) parts.push(`${c.offline} offline`);
  if (c.deferred) parts.push(`${c.deferred} deferred`);
  if (c.blocked) parts.push(`${c.blocked} blocked`);
  return parts.join(', ');
}

function hostWhy(h: StatusHost): string {
  const controls =
    h.failingControls.length === 0 ? '' : `; FAILING controls: ${controlNames(h.failingControls)}`;
  if (h.phase === 'pending')
    return (h.gate ? `${h.gate}: ${h.reason}` : (h.reason ?? 'eligible')) + controls;
  // A deferred host: why it defers (its ack) and what that does to its wave.
  if (h.phase === 'deferred' && h.reason) return `${h.detail}; ${h.reason}${controls}`;
  return h.detail + controls;
}

/** The banner of a stale view: first thing printed, so it cannot be missed (status and trace). */
export function staleBanner(
  f: { code: string; file: string; detail: string; verifiedAsOf: string },
  expires: string,
  now: number,
): string[] {
  return [
    `STALE: ${f.code}: ${f.file}: ${f.detail}`,
    `  the timestamp expired at ${expires} (${age(parseIsoTime(expires), now)}): hosts activate nothing new until CI re-signs it (nixfleet refresh).`,
    `  Shown: the last verified state (every signature verified as of ${f.verifiedAsOf}) with the hosts' current acks.`,
    '',
  ];
}

export function renderStatus(r: StatusReport): string {
  const out: string[] = [];
  const now = parseIsoTime(r.at);
  if (r.freshness.state === 'stale')
    out.push(...staleBanner(r.freshness, r.timestamp.expires, now));
  out.push(
    `fleet "${r.fleet}": release ${r.release.version} (issued ${r.release.issuedAt}, trust root v${r.release.rootVersion}), status at ${r.at}`,
  );
  out.push(
    r.freshness.state === 'fresh'
      ? `timestamp: fresh, issued ${r.timestamp.issuedAt} ` +
          `(${age(parseIsoTime(r.timestamp.issuedAt), now)}), ` +
          `expires ${r.timestamp.expires} (in ${duration(r.timestamp.secondsLeft * 1000)})`
      : `timestamp: STALE, issued ${r.timestamp.issuedAt} ` +
          `(${age(parseIsoTime(r.timestamp.issuedAt), now)}), ` +
          `expired ${r.timestamp.expires} ` +
          `(${age(parseIsoTime(r.timestamp.expires), now)})`,
  );
  const scope = r.acks.scope;
  out.push(
    `acks: ${r.acks.verified} verified${r.acks.rejected.length ? `, ${r.acks.rejected.length} REJECTED (not counted)` : ''}` +
      (scope === null
        ? ''
        : ` (read for this view: the ${scope.hosts} hosts its gates read, of channel ${scope.channels.join(', ')}, the channels gating it and its budgets)`),
  );
  for (const x of r.acks.rejected)
    out.push(
      `  rejected ${x.source}${x.host ? ` (claims host ${x.host})` : ''}: ${x.code}: ${x.reason}`,
    );
  for (const x of r.findings.revokedHosts) out.push(`revoked: ${x.host}: ${x.detail}`);
  for (const f of r.findings.unlistedManifests)
    out.push(`WARNING: ${f} is not listed in the release index`);

  for (const ch of r.channels) {
    out.push('');
    const wavePos =
      ch.currentWave < ch.waves.length
        ? `, ${waveLabel(ch.currentWave)} of ${ch.waves.length}`
        : '';
    out.push(
      `channel ${ch.channel}: ${ch.state.toUpperCase()}${wavePos}  (rollout ${ch.rolloutId.slice(7, 19)})`,
    );
    out.push(`  ${ch.reason}`);
    out.push(
      `  reboots: ${ch.reboot}; a deferred ` +
        `host ${ch.deferredHosts === 'excuse' ? 'is excused from its wave (deferredHosts: excuse)' : 'holds its wave (deferredHosts: hold)'}`,
    );
    const compliance = r.compliance.find((c) => c.channel === ch.channel);
    if (compliance) out.push(channelComplianceLine(compliance));
    for (const w of ch.waves) {
      out.push(
        `  ${waveLabel(w.index)}  ${w.state.padEnd(8)}  ${waveProgress(w)}; soak ${duration(w.soakSeconds * 1000)}`,
      );
      if (w.state !== 'complete' && w.blockingHosts.length)
        out.push(`          waiting for: ${listWithMore(w.blockingHosts, 20)}`);
    }
  }
  if (r.budgets.length) {
    out.push('');
    for (const b of r.budgets)
      out.push(
        `budget ${b.id}: ${b.inFlight}/${b.max} in flight${b.inFlightHosts.length ? ` (${listWithMore(b.inFlightHosts, 20)})` : ''}`,
      );
  }
  out.push('');
  if (r.problemsOnly && r.channels.length === 0 && r.hosts.length === 0 && r.budgets.length === 0) {
    out.push(
      'no problems: no failed, halted, deferred or blocked host or wave, no offline host holding a wave, no budget over its limit',
    );
    return out.join('\n');
  }
  // The age of each distinct last-ack second once (10,000 hosts' acks fall on few seconds).
  const ages = new Map<string, string>();
  const ackAge = (at: string) => {
    let a = ages.get(at);
    if (a === undefined) ages.set(at, (a = age(parseIsoTime(at), now)));
    return a;
  };
  const rows = [...r.hosts]
    .sort(
      (a, b) =>
        a.channel.localeCompare(b.channel) || a.wave - b.wave || a.host.localeCompare(b.host),
    )
    .map((h) => [
      h.host,
      h.channel,
      String(h.wave + 1),
      h.phase,
      h.current === null ? '-' : h.current === h.target ? '= target' : shortStorePath(h.current),
      shortStorePath(h.target),
      h.lastAck === null ? 'never' : `${h.lastAckKind} ${ackAge(h.lastAck)}`,
      hostWhy(h),
    ]);
  out.push(
    ...table(
      ['HOST', 'CHANNEL', 'WAVE', 'PHASE', 'CURRENT', 'TARGET', 'LAST ACK', 'GATE / DETAIL'],
      rows,
    ),
  );
  if (r.hosts.length === 1) {
    const h = r.hosts[0]!;
    if (h.lastAckSeq !== null)
      out.push(
        '',
        `latest ack of ${h.host}: seq ${h.lastAckSeq}, ${h.lastAckKind} at ${h.lastAck}${h.lastAckReason ? `: ${h.lastAckReason}` : ''}`,
      );
    if (h.compliance !== null) {
      out.push('', ...renderHostCompliance(h.host, h.compliance));
      // status reads the tree's acks (each host's latest); the full history is trace's.
      if (h.compliance.controls.some((c) => c.status === 'no-evidence'))
        out.push(
          `  (runtime results from the acks in the tree; \`nixfleet trace --host ${h.host}\` reads the whole history)`,
        );
    }
  }
  return out.join('\n');
}
