// A log-prefix index: the verified acks of one ack log segment's verified prefix (read-side/acks.ts
// LogPrefixMemo), kept in the operator's cache in a compact form, so that a warm `trace` takes them
// from it instead of splitting and `JSON.parse`-ing ~60,000 records again (at 10,000 hosts that was
// about a third of a warm trace's CPU, and most of its garbage: docs/benchmarks.md "operator").
//
// What it may hold: exactly the signed acks (`.signed`, every field, in the order parsed) that a full
// read of those bytes verified (strict intake, signature, claims under the prefix's trust fingerprint),
// with their chain digests. It is believed only for the prefix it names (file, fingerprint, length and
// SHA-256, all equal to the memo's remembered prefix, whose digest is checked against the bytes on
// every read), and only from a file sealed with the cache directory's key (verified-cache.ts). What a
// replay needs from an ack is its signed part; the signatures are not kept (a history read through an
// index carries no envelopes: an evidence bundle reads the log itself).
//
// Form: every distinct field value once (`values`), every distinct key list once (`shapes`), and per
// record its shape and a value position per key; a `prev` that is the digest of an earlier record of
// the index (nearly all: the hash chain) points at that record instead of repeating the digest.
import type { AckRecord } from '../reconciler/index.ts';
import { IDENTITY } from './ack-file-memo.ts';

export interface LogPrefixIndex {
  /** The verified prefix it belongs to (VerifiedLogPrefix: segment file, trust fingerprint, length, SHA-256). */
  file: string;
  fingerprint: string;
  bytes: number;
  digest: string;
  /** Lines (records) in the prefix, taken or not: where the line numbers of the records after it start. */
  lines: number;
  /**
   * The segment file's identity (ack-file-memo.ts identityOfStats) as a read that checked this
   * prefix's bytes saw it, when its times were clearly older than that read (racyCutoff): while the file still has this identity and
   * exactly `bytes` bytes, its bytes are the ones checked, and the prefix's SHA-256 is not recomputed.
   */
  identity?: string;
  /** Distinct field values. */
  values: unknown[];
  /** Distinct key lists. */
  shapes: string[][];
  /** Each record's chain digest (its identity in the history), in log order. */
  digests: string[];
  /** Per record: its shape, then a value position per key (a `prev` of record k: -(k + 1)). */
  records: number[];
}

/** An indexed record: its chain digest and its signed ack. */
export interface IndexedAck {
  digest: string;
  signed: AckRecord;
}

/** The index of `acks` (log order) for the prefix `of`. */
export function encodeLogPrefixIndex(
  of: Omit<LogPrefixIndex, 'values' | 'shapes' | 'digests' | 'records'>,
  acks: readonly IndexedAck[],
  base?: LogPrefixIndex,
): LogPrefixIndex {
  // `base`: the index of the records before `acks` (a prefix this one extends): kept as it is, so a
  // log that grew by a few records costs their encoding, not the whole prefix's again.
  const values: unknown[] = base === undefined ? [] : [...base.values];
  const primitive = new Map<unknown, number>();
  const composite = new Map<string, number>();
  const keyOf = (v: object) =>
    // Most acks carry no probes: an empty list is one key without serialising it.
    Array.isArray(v) && v.length === 0 ? '[]' : JSON.stringify(v);
  values.forEach((v, i) => {
    if (v !== null && typeof v === 'object') {
      if (!composite.has(keyOf(v))) composite.set(keyOf(v), i);
    } else if (!primitive.has(v)) primitive.set(v, i);
  });
  const valueAt = (v: unknown): number => {
    if (v !== null && typeof v === 'object') {
      const k = keyOf(v);
      let i = composite.get(k);
      if (i === undefined) composite.set(k, (i = values.push(v) - 1));
      return i;
    }
    let i = primitive.get(v);
    if (i === undefined) primitive.set(v, (i = values.push(v) - 1));
    return i;
  };
  const shapes: string[][] = base === undefined ? [] : [...base.shapes];
  const shapeAt = new Map<string, number>(shapes.map((keys, i) => [keys.join('\n'), i]));
  const digests = base === undefined ? [] : [...base.digests];
  const recordOf = new Map<string, number>();
  digests.forEach((d, n) => {
    if (!recordOf.has(d)) recordOf.set(d, n);
  });
  const records: number[] = base === undefined ? [] : [...base.records];
  let last: { keys: string[]; s: number } | null = null;
  for (const { digest, signed } of acks) {
    const n = digests.push(digest) - 1;
    const keys = Object.keys(signed);
    // Acks of one log share one key list or a few: compare with the last one before joining.
    let s: number | undefined = last !== null && sameKeys(keys, last.keys) ? last.s : undefined;
    if (s === undefined) {
      const sk = keys.join('\n');
      s = shapeAt.get(sk);
      if (s === undefined) shapeAt.set(sk, (s = shapes.push(keys) - 1));
      last = { keys, s };
    }
    records.push(s);
    for (const k of keys) {
      const v = (signed as unknown as Record<string, unknown>)[k];
      const chained = k === 'prev' && typeof v === 'string' ? recordOf.get(v) : undefined;
      records.push(chained === undefined ? valueAt(v) : -(chained + 1));
    }
    if (!recordOf.has(digest)) recordOf.set(digest, n);
  }
  return { ...of, values, shapes, digests, records };
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The index's acks, log order; null when it is not well formed (then the prefix is read in full).
 * Composite values (probe lists) are shared between the acks that carry them, so they are frozen.
 */
export function decodeLogPrefixIndex(index: LogPrefixIndex): IndexedAck[] | null {
  const { values, shapes, digests, records } = index;
  for (const v of values) if (v !== null && typeof v === 'object') deepFreeze(v);
  // Each ack starts as a copy of its shape's template (its keys, in order): one object copy instead of
  // a property added at a time (~2x faster for 60,000 acks in a fresh process).
  const templates = shapes.map((keys) => Object.fromEntries(keys.map((k) => [k, null])));
  const out: IndexedAck[] = [];
  let at = 0;
  for (let n = 0; n < digests.length; n++) {
    const s = records[at++]!;
    const keys = shapes[s];
    if (keys === undefined || at + keys.length > records.length) return null;
    const signed: Record<string, unknown> = { ...templates[s] };
    for (const k of keys) {
      const i = records[at++]!;
      if (i < 0) {
        const d = digests[-i - 1];
        if (d === undefined || -i - 1 >= n) return null;
        signed[k] = d;
      } else if (i < values.length && Number.isInteger(i)) signed[k] = values[i];
      else return null;
    }
    out.push({ digest: digests[n]!, signed: signed as unknown as AckRecord });
  }
  return at === records.length ? out : null;
}

function deepFreeze(v: object): void {
  Object.freeze(v);
  for (const x of Object.values(v)) if (x !== null && typeof x === 'object') deepFreeze(x);
}

/**
 * One line of a sealed index file (read-side/verified-cache.ts), or null. The shape is checked; the
 * contents are the sealing run's (decodeLogPrefixIndex checks positions).
 */
export function parseLogPrefixIndexLine(line: string): LogPrefixIndex | null {
  let x: Partial<LogPrefixIndex>;
  try {
    x = JSON.parse(line) as Partial<LogPrefixIndex>;
  } catch {
    return null;
  }
  return typeof x === 'object' &&
    x !== null &&
    typeof x.file === 'string' &&
    typeof x.fingerprint === 'string' &&
    typeof x.digest === 'string' &&
    Number.isSafeInteger(x.bytes) &&
    Number.isSafeInteger(x.lines) &&
    (x.identity === undefined || (typeof x.identity === 'string' && IDENTITY.test(x.identity))) &&
    Array.isArray(x.values) &&
    Array.isArray(x.shapes) &&
    x.shapes.every((s) => Array.isArray(s) && s.every((k) => typeof k === 'string')) &&
    Array.isArray(x.digests) &&
    x.digests.every((d) => typeof d === 'string') &&
    // Each position is checked as it is decoded (decodeLogPrefixIndex).
    Array.isArray(x.records)
    ? (x as LogPrefixIndex)
    : null;
}
