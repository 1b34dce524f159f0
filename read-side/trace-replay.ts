// A trace's replay over a history whose indexed log prefix was read without building its acks
// (AckHistory.deferred): from a replay checkpoint kept with that prefix's index when one applies, else
// from the start; either way it keeps the checkpoint of this replay there for the next run.
//
// The replay up to a step's end T (reconciler/trace.ts TraceCheckpoint) is a function of the acks signed
// at or before T, the release documents the reconciler reads (plans, budgets, revocations), the subject,
// the period's start, the step and the instant mode, and the reconciler's code. A checkpoint is kept
// under a key of all but the acks (replayKey), with the index it replayed (log-index.ts StoredReplay),
// sealed in the same file as the index. It is used only when the acks signed at or before T are exactly
// the ones it replayed: every ack of the history outside the index's first `records` records was signed
// after T (else the whole history is replayed). So a warm trace builds the acks signed after T and each
// host's latest ack at T, not ~60,000 (docs/architecture.md "Log-prefix indexes").
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sha256Digest } from '../protocol/index.ts';
import {
  parseAckTime,
  trace,
  tracePeriod,
  type AckRecord,
  type Trace,
  type TraceCheckpoint,
  type TraceInput,
} from '../reconciler/index.ts';
import type { AckHistory, DeferredRecords, LogPrefixMemo } from './acks.ts';
import { identityOfStats } from './ack-file-memo.ts';
import type { StoredReplay } from './log-index.ts';
import type { VerifiedRelease } from './load.ts';

/** trace()'s input without its history; the step and instant mode given. */
export type ReplayInput = Omit<TraceInput, 'history' | 'stepSeconds' | 'instants'> & {
  stepSeconds: number;
  instants: 'every-ack' | 'on-change';
};

/**
 * How long before the newest indexed ack a checkpoint is kept: acks signed up to this much before it
 * that arrive later (a delayed post, a host's skewed clock) still find it usable.
 */
export const CHECKPOINT_MARGIN_MS = 10 * 60_000;

/**
 * trace() over `history` (its deferred acks built as needed), resumed from the checkpoint kept with the
 * index of its one deferred prefix when it applies; with `replays`, this replay's checkpoint is kept
 * there. Several deferred prefixes (a multi-segment log, replica logs): every ack built, no checkpoint.
 */
export function replayTrace(
  release: VerifiedRelease,
  input: ReplayInput,
  history: AckHistory,
  replays: LogPrefixMemo | undefined,
): Trace {
  const deferred = history.deferred ?? [];
  if (deferred.length !== 1) {
    const all = [...history.acks];
    for (const d of deferred) for (const n of d.taken) all.push(d.records.ack(n));
    return trace({ ...input, history: all });
  }
  const block = deferred[0]!;
  const others = Float64Array.from(history.acks, (a) => parseAckTime(a.time));
  const period = tracePeriod(input, spanOf(block, others));
  const key = replayKey(release, input, period.from, block.records.index.fingerprint);
  const stored = block.records.index.replays?.find((r) => r.key === key);
  const usable = stored !== undefined && resumes(stored, block, others, period.until);
  if (usable && replays !== undefined) replays.resumedReplays++;
  const built = new Map<AckRecord, number>();
  const build = (n: number): AckRecord => {
    const a = block.records.ack(n);
    built.set(a, n);
    return a;
  };
  const after = usable ? stored.checkpoint.at : -Infinity;
  const replayed: AckRecord[] = [...history.acks];
  for (const n of block.taken) if (block.records.timeMs[n]! > after) replayed.push(build(n));
  const t = trace({
    ...input,
    ...period,
    history: replayed,
    ...(usable ? { resume: resumed(stored, build) } : {}),
    checkpointAt: checkpointInstant(input, period, block, others),
  });
  // The checkpoint of this replay, else the one it resumed from (kept with an index extended since).
  const kept =
    t.checkpoint === undefined
      ? usable
        ? stored
        : null
      : storedReplay(key, block, t.checkpoint, built);
  if (replays !== undefined && kept !== null) replays.keepReplay(block.records.index, kept);
  return t;
}

/** The first and last signing times of the history (the deferred prefix's and `others`), null: none. */
function spanOf(block: DeferredRecords, others: Float64Array): [number, number] | null {
  let first = Infinity;
  let last = -Infinity;
  const see = (t: number) => {
    if (t < first) first = t;
    if (t > last) last = t;
  };
  for (const n of block.taken) see(block.records.timeMs[n]!);
  for (const t of others) see(t);
  return first === Infinity ? null : [first, last];
}

/**
 * Whether `stored` replayed exactly the acks of this history signed at or before its instant: it is
 * before the period's end and every ack outside the records it covers was signed after it.
 */
function resumes(
  stored: StoredReplay,
  block: DeferredRecords,
  others: Float64Array,
  until: number,
): boolean {
  const at = stored.checkpoint.at;
  if (stored.records > block.records.count || at >= until) return false;
  for (const t of others) if (t <= at) return false;
  for (const n of block.taken)
    if (n >= stored.records && block.records.timeMs[n]! <= at) return false;
  return true;
}

/** The stored checkpoint with its acks built from their records. */
function resumed(stored: StoredReplay, build: (n: number) => AckRecord): TraceCheckpoint {
  const acks = Object.create(null) as Record<string, AckRecord>;
  for (const n of stored.acks) {
    const a = build(n);
    acks[a.host] = a;
  }
  return { ...stored.checkpoint, acks };
}

/**
 * Where to keep this replay's checkpoint: the last step's end before the period's end, at least
 * CHECKPOINT_MARGIN_MS before the newest indexed ack, and before every ack outside the index (so that
 * every ack it replayed is one of the index's records). Undefined: no such step.
 */
function checkpointInstant(
  input: ReplayInput,
  period: { from: number; until: number },
  block: DeferredRecords,
  others: Float64Array,
): number | undefined {
  let newest = -Infinity;
  for (const n of block.taken) newest = Math.max(newest, block.records.timeMs[n]!);
  let limit = Math.min(period.until - 1, newest - CHECKPOINT_MARGIN_MS);
  for (const t of others) limit = Math.min(limit, t - 1);
  const step = input.stepSeconds * 1000;
  const at = period.from + Math.floor((limit - period.from) / step) * step;
  return at >= period.from ? at : undefined;
}

/** `checkpoint` as kept with the index: its acks as record numbers (null: one is not an indexed record). */
function storedReplay(
  key: string,
  block: DeferredRecords,
  checkpoint: TraceCheckpoint,
  built: ReadonlyMap<AckRecord, number>,
): StoredReplay | null {
  const acks: number[] = [];
  for (const a of Object.values(checkpoint.acks)) {
    const n = built.get(a);
    if (n === undefined) return null;
    acks.push(n);
  }
  const { acks: _, ...state } = checkpoint;
  return { key, records: block.records.count, checkpoint: state, acks: acks.sort((x, y) => x - y) };
}

/**
 * What a replay up to a given instant is a function of, besides the acks: the release documents the
 * reconciler reads (each plan's and the budgets' digests as the verified index binds them, the
 * revocations), the subject, the period's start, the step, the instant mode, the trust fingerprint of
 * the acks read, and the code doing it (the identity of this module's file: a rebuilt or upgraded
 * nixfleet replays afresh).
 */
function replayKey(
  release: VerifiedRelease,
  input: ReplayInput,
  from: number,
  fingerprint: string,
): string {
  const plans = Object.entries(release.index.channels).map(([c, x]) => [c, x.plan.digest]);
  const text = JSON.stringify({
    code: codeIdentity(),
    plans,
    budgets: release.index.budgets.digest,
    revocations: release.revocations,
    subject: input.subject,
    from,
    step: input.stepSeconds,
    instants: input.instants,
    fingerprint,
  });
  return sha256Digest(Buffer.from(text, 'utf8'));
}

let code: string | undefined;
function codeIdentity(): string {
  return (code ??= identityOfStats(statSync(fileURLToPath(import.meta.url))).identity);
}
