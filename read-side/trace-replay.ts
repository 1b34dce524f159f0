// A trace's replay over a history whose indexed log prefix was read without building its acks
// (AckHistory.deferred): from a replay checkpoint kept with that prefix's index when one applies, else
// from the start; either way it keeps this replay's checkpoints there for the next run.
//
// The replay up to a step's end T (reconciler/trace.ts TraceCheckpoint) is a function of the acks signed
// at or before T, the release documents the reconciler reads (plans, budgets, revocations), the subject,
// the period's start, the step and the instant mode, and the reconciler's code. A checkpoint is kept
// under a key of all but the acks (replayKey), with the index it replayed (log-index.ts StoredReplay),
// sealed in the same file as the index. It is used only when the acks signed at or before T are exactly
// the ones it replayed: every ack of the history outside the index's first `records` records was signed
// after T (else the whole history is replayed). So a warm trace builds the acks signed after T and each
// host's latest ack at T, not ~60,000 (docs/architecture.md "Deferred indexed acks and replay
// checkpoints").
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
 * trace() over `history` (its deferred acks built as needed), resumed from a checkpoint kept with the
 * index of one of its deferred prefixes when one applies; with `replays`, this replay's checkpoints are
 * kept with the last one's. Several deferred prefixes (a log of several segments, replica logs) are one
 * sequence of records, numbered in their order (a checkpoint kept with the prefix of block j names the
 * blocks before it, so its numbers stand for the same records as long as those blocks are the same).
 */
export function replayTrace(
  release: VerifiedRelease,
  input: ReplayInput,
  history: AckHistory,
  replays: LogPrefixMemo | undefined,
): Trace {
  const blocks = history.deferred ?? [];
  if (blocks.length === 0) return trace({ ...input, history: [...history.acks] });
  const seq = new BlockSequence(blocks);
  const others = Float64Array.from(history.acks, (a) => parseAckTime(a.time));
  const times = timesOf(blocks, others);
  const period = tracePeriod(input, spanOf(times));
  const key = replayKey(release, input, period.from, seq.fingerprint);
  // The checkpoints of this trace that apply (one that does not never will again: the acks signed
  // before it that it did not replay stay in the history), latest first: the one closest to the end
  // usually; when an ack signed before it arrived late, the one CHECKPOINT_MARGIN_MS earlier may.
  const earlier = blocks
    .flatMap((b, j) => (b.records.index.replays ?? []).map((r) => ({ r, j })))
    .filter(({ r, j }) => r.key === key && resumes(r, j, seq, times, period.until))
    .map(({ r }) => r)
    .sort((x, y) => y.checkpoint.at - x.checkpoint.at);
  const stored = earlier[0];
  const usable = stored !== undefined;
  if (usable && replays !== undefined) replays.resumedReplays++;
  const built = new Map<AckRecord, number>();
  const build = (n: number): AckRecord => {
    const a = seq.ack(n);
    built.set(a, n);
    return a;
  };
  const after = usable ? stored.checkpoint.at : -Infinity;
  const replayed: AckRecord[] = [...history.acks];
  blocks.forEach((block, j) => {
    for (let i = 0; i < block.taken.length; i++) {
      const n = block.taken[i]!;
      if (block.records.timeMs[n]! > after) replayed.push(build(seq.offsets[j]! + n));
    }
  });
  const t = trace({
    ...input,
    ...period,
    history: replayed,
    ...(usable ? { resume: resumed(stored, build) } : {}),
    checkpointAt: checkpointInstants(input, period, times),
  });
  if (replays !== undefined) keepCheckpoints(replays, key, seq, t, earlier, built);
  return t;
}

/**
 * The deferred prefixes of a history as one sequence of records: record n of block j is number
 * offsets[j] + n. A block is identified by its index's trust fingerprint and prefix digest.
 */
class BlockSequence {
  readonly offsets: number[] = [];
  readonly identities: string[];
  readonly fingerprint: string;

  constructor(readonly blocks: readonly DeferredRecords[]) {
    let total = 0;
    for (const b of blocks) {
      this.offsets.push(total);
      total += b.records.count;
    }
    this.identities = blocks.map(
      ({ records: { index } }) => `${index.fingerprint} ${index.digest}`,
    );
    this.fingerprint = [...new Set(blocks.map((b) => b.records.index.fingerprint))].join(',');
  }

  /** The ack of record number `n` of the sequence. */
  ack(n: number): AckRecord {
    let j = this.blocks.length - 1;
    while (this.offsets[j]! > n) j--;
    return this.blocks[j]!.records.ack(n - this.offsets[j]!);
  }

  /** Where the records a checkpoint kept with block j's index covers end (null: another sequence). */
  coveredUntil(stored: StoredReplay, j: number): number | null {
    const before = stored.before ?? [];
    if (before.length !== j || before.some((id, i) => id !== this.identities[i])) return null;
    if (stored.records > this.blocks[j]!.records.count) return null;
    return this.offsets[j]! + stored.records;
  }
}

/**
 * Keeps with the last block's index this replay's checkpoints and the earlier ones that apply at other
 * instants (still of use after a late ack): the newest CHECKPOINTS_PER_KEY, each as covering every
 * record read now (sound for an earlier one too: every record outside what it covered was signed after
 * it, or it would not apply). None when an ack of a checkpoint is not one of the blocks' records
 * (`built` maps those it built to their numbers).
 */
function keepCheckpoints(
  replays: LogPrefixMemo,
  key: string,
  seq: BlockSequence,
  t: Trace,
  earlier: readonly StoredReplay[],
  built: ReadonlyMap<AckRecord, number>,
): void {
  const last = seq.blocks.length - 1;
  const frame = {
    key,
    records: seq.blocks[last]!.records.count,
    ...(last > 0 ? { before: seq.identities.slice(0, last) } : {}),
  };
  const made = (t.checkpoints ?? []).map((c) => storedReplay(frame, c, built));
  if (made.includes(null)) return;
  const fresh = made as StoredReplay[];
  const at = new Set(fresh.map((r) => r.checkpoint.at));
  const kept = [
    ...fresh,
    ...earlier
      .filter((r) => !at.has(r.checkpoint.at))
      .map(({ checkpoint, acks }) => ({ ...frame, checkpoint, acks })),
  ]
    .sort((x, y) => y.checkpoint.at - x.checkpoint.at)
    .slice(0, CHECKPOINTS_PER_KEY);
  replays.keepReplays(seq.blocks[last]!.records.index, key, kept);
}

/** The first and last signing times of the deferred prefixes' records taken and of the other acks. */
interface Times {
  indexed: { first: number; last: number } | null;
  others: { first: number; last: number } | null;
}

function timesOf(blocks: readonly DeferredRecords[], others: Float64Array): Times {
  const indexed = new Span();
  for (const { records, taken } of blocks)
    for (let i = 0; i < taken.length; i++) indexed.add(records.timeMs[taken[i]!]!);
  const other = new Span();
  for (let i = 0; i < others.length; i++) other.add(others[i]!);
  return { indexed: indexed.value(), others: other.value() };
}

/**
 * The first and last of the times added. Fed by indexed loops: timesOf runs once per process, mostly
 * before the optimising compiler sees it.
 */
class Span {
  private first = Infinity;
  private last = -Infinity;

  add(t: number): void {
    if (t < this.first) this.first = t;
    if (t > this.last) this.last = t;
  }

  /** null: none added. */
  value(): { first: number; last: number } | null {
    return this.first > this.last ? null : { first: this.first, last: this.last };
  }
}

/** The first and last signing times of the whole history, null: no ack. */
function spanOf({ indexed, others }: Times): [number, number] | null {
  const spans = [indexed, others].filter((x) => x !== null);
  if (spans.length === 0) return null;
  return [Math.min(...spans.map((x) => x.first)), Math.max(...spans.map((x) => x.last))];
}

/**
 * Whether `stored` (kept with block j's index) replayed exactly the acks of this history signed at or
 * before its instant: it is before the period's end, it covers records of this sequence (the same
 * blocks before j, no more of block j than it holds), its acks are among them, and every ack outside
 * them was signed after it.
 */
function resumes(
  stored: StoredReplay,
  j: number,
  seq: BlockSequence,
  t: Times,
  until: number,
): boolean {
  const at = stored.checkpoint.at;
  const covered = seq.coveredUntil(stored, j);
  if (covered === null || at >= until) return false;
  if (stored.acks.some((n) => n >= covered)) return false;
  if (t.others !== null && t.others.first <= at) return false;
  // The records taken after those it covers (`taken` is in log order): block j's growth since, and
  // every block after j.
  for (let k = j; k < seq.blocks.length; k++) {
    const { taken, records } = seq.blocks[k]!;
    const from = k === j ? stored.records : 0;
    let lo = 0;
    for (let hi = taken.length; lo < hi;) {
      const mid = (lo + hi) >> 1;
      if (taken[mid]! < from) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < taken.length; i++) if (records.timeMs[taken[i]!]! <= at) return false;
  }
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
 * Where to keep this replay's checkpoints: the last steps' ends before the period's end and before every
 * ack outside the index (so that every ack they replayed is one of the index's records), at or before
 * the newest indexed ack, and CHECKPOINT_MARGIN_MS before it (usable still when an ack signed up to
 * that much before the newest arrives late).
 */
function checkpointInstants(
  input: ReplayInput,
  period: { from: number; until: number },
  t: Times,
): number[] {
  if (t.indexed === null) return [];
  const newest = t.indexed.last;
  const limit = Math.min(period.until - 1, newest, (t.others?.first ?? Infinity) - 1);
  const step = input.stepSeconds * 1000;
  const stepBefore = (x: number) => period.from + Math.floor((x - period.from) / step) * step;
  const at = [stepBefore(limit), stepBefore(Math.min(limit, newest - CHECKPOINT_MARGIN_MS))];
  return [...new Set(at.filter((x) => x >= period.from))];
}

/** Checkpoints kept per trace key: the latest, and one CHECKPOINT_MARGIN_MS before the newest ack. */
const CHECKPOINTS_PER_KEY = 2;

/**
 * `checkpoint` as kept in `frame` (the key, the records covered, the blocks before): its acks as record
 * numbers (null: one is not a deferred record).
 */
function storedReplay(
  frame: Omit<StoredReplay, 'checkpoint' | 'acks'>,
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
  return { ...frame, checkpoint: state, acks: acks.sort((x, y) => x - y) };
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
