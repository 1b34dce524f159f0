// `nixfleet trace`: the reconciler's trace() over the verified ack history of a verified release, as
// data (ISO times, for --json) and as a readable timeline. The history is the ack endpoint's log (every
// ack ever accepted) plus whatever the tree's acks/ holds; both are verified ack by ack.
import { existsSync } from 'node:fs';
import {
  trace,
  type AckRecord,
  type Gate,
  type HostPhase,
  type Trace,
} from '../reconciler/index.ts';
import { parseIsoTime } from '../protocol/index.ts';
import {
  ackHistoryByHost,
  readAckHistory,
  type AckCache,
  type AckHistory,
  type AckRejection,
  type LogPrefixMemo,
} from './acks.ts';
import type { AckFileMemo } from './ack-file-memo.ts';
import { replayTrace, type ReplayInput } from './trace-replay.ts';
import { hostCompliance, renderHostCompliance, type HostComplianceView } from './compliance.ts';
import { ackTrustOf, acksDirOf, defaultAckLogOf, hostScope, type VerifiedRelease } from './load.ts';
import { viewScope, type ViewScope } from './scope.ts';
import { UnknownSubject } from './subject.ts';
import { duration, iso, waveLabel } from './format.ts';
import { staleBanner } from './status.ts';
import type { StaleRelease } from './load.ts';

export type { AckHistory } from './acks.ts';

/**
 * `logFile` undefined: the control plane's default log (DIR/.ack-log/acks.log) when it exists.
 * `replicaLogs`: the logs of other control plane boxes, read into the same history (their union).
 * `hosts`: only these hosts' acks (traceScope: what the subject's gates read); default every host's.
 * `prefixes`: the logs' verified prefixes remembered by an earlier read (the store's logPrefixes), so
 * that only their new records are checked; the caller saves it.
 * `files`: the latest-ack files an earlier run read with their verified acks (the store's
 * verifiedAckFiles; TreeAckOptions.files), used when there is a log (then no bundles are read, and the
 * memo keeps no bytes to compare them with); the caller saves it.
 * `deferIndexed`: leave the acks of indexed prefixes unbuilt (AckHistory.deferred: traceReport builds
 * those its replay needs).
 */
export function loadAckHistory(
  dir: string,
  release: VerifiedRelease,
  logFile?: string,
  cache?: AckCache,
  replicaLogs: readonly string[] = [],
  hosts?: ReadonlySet<string>,
  prefixes?: LogPrefixMemo,
  files?: AckFileMemo,
  deferIndexed = false,
): AckHistory {
  const log = logFile ?? defaultAckLogOf(dir);
  for (const f of [log, ...replicaLogs])
    if (f !== null && !existsSync(f)) throw new Error(`${f}: no such ack log`);
  return readAckHistory({
    acksDir: acksDirOf(dir),
    logFile: log,
    trust: ackTrustOf(release),
    // The log holds every ack the bundles repeat (the endpoint bundles what it logged); without a log the
    // bundles are the only history older than each host's latest ack.
    bundles: log === null,
    ...(cache ? { cache } : {}),
    ...(replicaLogs.length > 0 ? { replicaLogs } : {}),
    ...(hosts === undefined ? {} : { hosts }),
    ...(prefixes === undefined ? {} : { log: { prefixes } }),
    // A verified memo keeps no bytes to compare bundles with: used only when there are no bundles to read.
    ...(files === undefined || log === null ? {} : { files }),
    ...(deferIndexed ? { deferIndexed } : {}),
  });
}

export type TraceSubject = { host: string } | { channel: string };

/**
 * The hosts whose acks a trace of `subject` replays: its channel's, the gating channels' and its budgets'
 * members (read-side/scope.ts). An unknown subject is UnknownSubject, as traceReport says it.
 */
export function traceScope(release: VerifiedRelease, subject: TraceSubject): ViewScope {
  if ('host' in subject) return hostScope(release, subject.host);
  if (!release.plans[subject.channel])
    throw new UnknownSubject(
      `no channel "${subject.channel}" in release ${release.index.version} (channels: ${Object.keys(release.plans).sort().join(', ')})`,
    );
  return viewScope(release.plans, release.budgets, [subject.channel]);
}

export interface TraceOptions {
  /**
   * ms: the traced period. Defaults: first ack .. min(now, last ack + longest soak), of the history
   * given (a scoped history: the acks of the hosts the subject's gates read).
   */
  from?: number;
  until?: number;
  /** The instant the tree was verified at: the default end, so the trace never extrapolates past it. */
  now: number;
  stepSeconds?: number;
  /**
   * The reconciler's evaluation instants (reconciler/trace.ts): default 'on-change' for a host (a step
   * is replayed ack by ack only when the host's phase or gate differs at its end), 'every-ack' for a channel.
   */
  instants?: 'every-ack' | 'on-change';
  /** Non-null: the release is the last verified state of an expired timestamp. */
  stale?: StaleRelease | null;
  /** The scope the history was read for (traceScope), reported with it; none: every host's acks. */
  scope?: ViewScope;
  /**
   * The log prefixes the history was read with: a history with deferred indexed acks resumes from a
   * replay checkpoint kept with their index, and keeps the one of this replay there (the caller saves
   * it). See read-side/trace-replay.ts.
   */
  replays?: LogPrefixMemo;
}

export interface TraceHostReport {
  host: string;
  channel: string;
  wave: number;
  eligibleAt: string | null;
  activatedAt: string | null;
  confirmedAt: string | null;
  soakedAt: string | null;
  failedAt: string | null;
  /** Why it failed (the signed failure report's reason, or the missed confirm deadline); null: it did not. */
  failedReason: string | null;
  holds: { gate: Gate; from: string; to: string; seconds: number; reason: string }[];
}

export interface TraceReport {
  fleet: string;
  subject: TraceSubject;
  release: { version: number; rolloutId: string; channel: string };
  /** As in status: `stale` when the timestamp expired and this is the last verified release (exit 3). */
  freshness:
    | { state: 'fresh' }
    | { state: 'stale'; code: string; file: string; detail: string; verifiedAsOf: string };
  timestamp: { issuedAt: string; expires: string };
  /** The instant the tree was verified at (--now). */
  at: string;
  from: string;
  until: string;
  history: {
    verified: number;
    rejected: AckRejection[];
    log: string | null;
    logRecords: number;
    logTornBytes: number;
    /** Non-null: only these hosts' acks were read (traceScope); logRecords counts the records read. */
    scope: { channels: string[]; hosts: number } | null;
  };
  hosts: TraceHostReport[];
  /** `--host`: the host's controls (its verified manifest, its newest signed evidence in the history); null without frameworks. */
  compliance?: HostComplianceView | null;
  entries: {
    at: string;
    host: string;
    phase: HostPhase;
    gate: Gate | null;
    reason: string | null;
  }[];
}

const isoOrNull = (ms: number | null) => (ms === null ? null : iso(ms));

export function traceReport(
  release: VerifiedRelease,
  history: AckHistory,
  subject: TraceSubject,
  opts: TraceOptions,
): TraceReport {
  let channel: string;
  if ('host' in subject) {
    const plan = Object.values(release.plans).find((p) => p.hosts[subject.host] !== undefined);
    if (!plan)
      throw new UnknownSubject(`no host "${subject.host}" in release ${release.index.version}`);
    channel = plan.channel;
  } else {
    if (!release.plans[subject.channel])
      throw new UnknownSubject(
        `no channel "${subject.channel}" in release ${release.index.version} (channels: ${Object.keys(release.plans).sort().join(', ')})`,
      );
    channel = subject.channel;
  }
  const plan = release.plans[channel]!;
  // The default period (first ack .. last ack + longest soak) is trace()'s, clamped to `now`.
  const input: ReplayInput = {
    plans: release.plans,
    budgets: release.budgets,
    revocations: release.revocations,
    subject,
    now: opts.now,
    ...(opts.from === undefined ? {} : { from: opts.from }),
    ...(opts.until === undefined ? {} : { until: opts.until }),
    stepSeconds: opts.stepSeconds ?? 60,
    instants: opts.instants ?? ('host' in subject ? 'on-change' : 'every-ack'),
  };
  const deferred = history.deferred ?? [];
  const t: Trace =
    deferred.length === 0
      ? trace({ ...input, history: history.acks })
      : replayTrace(release, input, history, opts.replays);
  return {
    fleet: release.root.fleet,
    subject,
    release: { version: release.index.version, rolloutId: plan.rolloutId, channel },
    freshness: opts.stale
      ? {
          state: 'stale',
          code: opts.stale.failure.code,
          file: opts.stale.failure.file,
          detail: opts.stale.failure.detail,
          verifiedAsOf: iso(opts.stale.verifiedAsOf),
        }
      : { state: 'fresh' },
    timestamp: { issuedAt: release.timestamp.issuedAt, expires: release.timestamp.expires },
    at: iso(opts.now),
    from: iso(t.from),
    until: iso(t.until),
    history: {
      verified: history.acks.length + deferred.reduce((n, d) => n + d.taken.length, 0),
      rejected: history.rejected,
      log: history.sources.log,
      logRecords: history.sources.logRecords,
      logTornBytes: history.sources.logTornBytes,
      scope:
        opts.scope === undefined
          ? null
          : { channels: opts.scope.channels, hosts: opts.scope.hosts.size },
    },
    hosts: t.hosts.map((h) => ({
      host: h.host,
      channel: h.channel,
      wave: h.wave,
      eligibleAt: isoOrNull(h.eligibleAt),
      activatedAt: isoOrNull(h.activatedAt),
      confirmedAt: isoOrNull(h.confirmedAt),
      soakedAt: isoOrNull(h.soakedAt),
      failedAt: isoOrNull(h.failedAt),
      failedReason: h.failedReason,
      holds: h.holds.map((x) => ({
        gate: x.gate,
        from: iso(x.from),
        to: iso(x.to),
        seconds: x.seconds,
        reason: x.reason,
      })),
    })),
    ...('host' in subject
      ? {
          compliance: hostCompliance(
            release,
            subject.host,
            ackHistoryByHost(acksOfHost(history, subject.host)).get(subject.host) ?? [],
          ),
        }
      : {}),
    entries: t.entries.map((e) => ({
      at: iso(e.at),
      host: e.host,
      phase: e.phase,
      gate: e.gate,
      reason: e.reason,
    })),
  };
}

/** Every verified ack of `host` in the history, deferred indexed ones built. */
function acksOfHost(history: AckHistory, host: string): AckRecord[] {
  const out = history.acks.filter((a) => a.host === host);
  for (const { records, taken } of history.deferred ?? [])
    for (const n of taken) if (records.host(n) === host) out.push(records.ack(n));
  return out;
}

/** "+7m 00s" from the start of the trace: easier to follow than absolute times. */
function offset(at: string, from: string): string {
  return `+${duration(parseIsoTime(at) - parseIsoTime(from))}`;
}

export function renderTrace(r: TraceReport): string {
  const out: string[] = [];
  if (r.freshness.state === 'stale')
    out.push(...staleBanner(r.freshness, r.timestamp.expires, parseIsoTime(r.at)));
  const what =
    'host' in r.subject
      ? `host ${r.subject.host} (channel ${r.release.channel})`
      : `channel ${r.release.channel}`;
  out.push(
    `trace of ${what}, fleet "${r.fleet}", release ${r.release.version}, rollout ${r.release.rolloutId.slice(7, 19)}`,
  );
  out.push(
    `period ${r.from} .. ${r.until} (${duration(parseIsoTime(r.until) - parseIsoTime(r.from))})`,
  );
  const src = r.history.log
    ? `${r.history.log} (${r.history.logRecords} ` +
      `records${r.history.logTornBytes ? `, torn tail of ${r.history.logTornBytes} bytes ignored` : ''}) ` +
      `+ the tree's acks/`
    : "the tree's acks/ only (latest ack per host: pass --acks-log for the full history)";
  const scope = r.history.scope;
  const of =
    scope === null
      ? ''
      : ` of the ${scope.hosts} hosts the gates read (channel ${scope.channels.join(', ')}, the channels gating it, its budgets)`;
  out.push(
    `history: ${r.history.verified} verified acks${of} from ${src}${r.history.rejected.length ? `; ${r.history.rejected.length} REJECTED (not counted)` : ''}`,
  );
  for (const x of r.history.rejected)
    out.push(
      `  rejected ${x.source}${x.host ? ` (claims host ${x.host})` : ''}: ${x.code}: ${x.reason}`,
    );

  out.push('', 'timeline:');
  for (const e of r.entries) {
    const what =
      e.phase === 'pending'
        ? e.gate
          ? `held by ${e.gate}: ${e.reason}`
          : 'eligible: every gate passed'
        : e.phase === 'failed'
          ? `FAILED: ${e.reason}`
          : e.phase;
    out.push(`  ${e.at}  ${offset(e.at, r.from).padStart(9)}  ${e.host}  ${what}`);
  }
  if (r.entries.length === 0) out.push('  (no events)');

  out.push('', 'per host:');
  for (const h of r.hosts) {
    const step = (label: string, at: string | null) =>
      at === null ? null : `${label} ${offset(at, r.from)}`;
    const steps = [
      step('eligible', h.eligibleAt),
      step('activated', h.activatedAt),
      step('confirmed', h.confirmedAt),
      step('soaked', h.soakedAt),
      step('FAILED', h.failedAt),
    ]
      .map((s) =>
        s !== null && s.startsWith('FAILED') && h.failedReason ? `${s} (${h.failedReason})` : s,
      )
      .filter((s) => s !== null);
    out.push(
      `  ${h.host} (${waveLabel(h.wave)}): ${steps.length ? steps.join(', ') : 'nothing happened in this period'}`,
    );
    for (const x of h.holds)
      out.push(
        `    held by ${x.gate} for ${duration(x.seconds * 1000)} (${offset(x.from, r.from)} .. ${offset(x.to, r.from)}): ${x.reason}`,
      );
  }
  if ('host' in r.subject && r.compliance !== undefined)
    out.push('', ...renderHostCompliance(r.subject.host, r.compliance));
  return out.join('\n');
}
