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
// Form: every distinct field value once (`values`), every distinct key list once (`shapes`), the
// records' chain digests as one string (DIGEST_LENGTH characters each), and per record its shape and a
// value per key as unsigned LEB128 varints (base64): a value position p as 2p, a `prev` that is the
// digest of the record d places earlier (nearly all: the hash chain) as 2d - 1. A warm trace parses
// a few long strings instead of ~60,000 digest strings and ~1,000,000 numbers (v1: JSON arrays of
// both), and keeps neither array on its heap.
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
   * The segment file's identity (ack-file-memo.ts identityOfStats) as a read that checked this prefix's
   * bytes saw it, when its times were clearly older than that read (racyCutoff): while the file still
   * has this identity and exactly `bytes` bytes, its bytes are the ones checked, and the prefix's
   * SHA-256 is not recomputed.
   */
  identity?: string;
  /** Distinct field values. */
  values: unknown[];
  /** Distinct key lists. */
  shapes: string[][];
  /** Each record's chain digest (its identity in the history), in log order, DIGEST_LENGTH characters each. */
  digests: string;
  /** Per record: its shape, then a value per key (see Form above), as varints in base64. */
  records: string;
}

/** A chain digest: `sha256:` and 64 hex digits. */
const DIGEST_LENGTH = 71;

/** How many records the index holds. */
export function indexedRecordCount(index: LogPrefixIndex): number {
  return Math.floor(index.digests.length / DIGEST_LENGTH);
}

/** The chain digest of record `n` of the index. */
export function indexedDigest(index: LogPrefixIndex, n: number): string {
  return index.digests.slice(n * DIGEST_LENGTH, (n + 1) * DIGEST_LENGTH);
}

/** An indexed record: its chain digest and its signed ack. */
export interface IndexedAck {
  digest: string;
  signed: AckRecord;
}

/**
 * The index of `acks` (log order) for the prefix `of`; null when a digest is not a chain digest
 * (DIGEST_LENGTH characters: then the prefix has no index and is read in full).
 */
export function encodeLogPrefixIndex(
  of: Omit<LogPrefixIndex, 'values' | 'shapes' | 'digests' | 'records'>,
  acks: readonly IndexedAck[],
  base?: LogPrefixIndex,
): LogPrefixIndex | null {
  // `base`: the index of the records before `acks` (a prefix this one extends): kept as it is, so a
  // log that grew by a few records costs their encoding, not the whole prefix's again.
  const values: unknown[] = base === undefined ? [] : [...base.values];
  const valueAt = valuePositions(values);
  const shapes: string[][] = base === undefined ? [] : [...base.shapes];
  const shapeAt = new Map<string, number>(shapes.map((keys, i) => [keys.join('\n'), i]));
  const known = base === undefined ? 0 : indexedRecordCount(base);
  const recordOf = new Map<string, number>();
  for (let n = 0; n < known; n++) {
    const d = indexedDigest(base!, n);
    if (!recordOf.has(d)) recordOf.set(d, n);
  }
  const out: number[] = [...(base === undefined ? [] : Buffer.from(base.records, 'base64'))];
  const digests: string[] = [base?.digests ?? ''];
  let last: { keys: string[]; s: number } | null = null;
  for (const [i, { digest, signed }] of acks.entries()) {
    if (digest.length !== DIGEST_LENGTH) return null;
    const n = known + i;
    digests.push(digest);
    const keys = Object.keys(signed);
    // Acks of one log share one key list or a few: compare with the last one before joining.
    let s: number | undefined = last !== null && sameKeys(keys, last.keys) ? last.s : undefined;
    if (s === undefined) {
      const sk = keys.join('\n');
      s = shapeAt.get(sk);
      if (s === undefined) shapeAt.set(sk, (s = shapes.push(keys) - 1));
      last = { keys, s };
    }
    writeVarint(out, s);
    for (const k of keys) {
      const v = (signed as unknown as Record<string, unknown>)[k];
      const chained = k === 'prev' && typeof v === 'string' ? recordOf.get(v) : undefined;
      writeVarint(out, chained === undefined ? 2 * valueAt(v) : 2 * (n - chained) - 1);
    }
    if (!recordOf.has(digest)) recordOf.set(digest, n);
  }
  const records = Buffer.from(out).toString('base64');
  return { ...of, values, shapes, digests: digests.join(''), records };
}

/** The position of a value in `values` (added when new): primitives by value, composites by their JSON. */
export function valuePositions(values: unknown[]): (v: unknown) => number {
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
  return (v) => {
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
}

/** Unsigned LEB128: 7 bits a byte, low first, the high bit set on all but the last. */
export function writeVarint(out: number[], u: number): void {
  while (u >= 0x80) {
    out.push((u & 0x7f) | 0x80);
    u >>>= 7;
  }
  out.push(u);
}

/** Reads varints of at most 28 bits from `bytes` in turn; -1 past the end or for a longer one. */
export class VarintReader {
  at = 0;
  constructor(private readonly bytes: Uint8Array) {}

  next(): number {
    let u = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (this.at >= this.bytes.length) return -1;
      const b = this.bytes[this.at++]!;
      u |= (b & 0x7f) << shift;
      if (b < 0x80) return u;
    }
    return -1;
  }

  get done(): boolean {
    return this.at === this.bytes.length;
  }
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
  const { values, shapes } = index;
  const count = indexedRecordCount(index);
  if (index.digests.length !== count * DIGEST_LENGTH) return null;
  for (const v of values) if (v !== null && typeof v === 'object') deepFreeze(v);
  // Each ack starts as a copy of its shape's template (its keys, in order): one object copy instead of
  // a property added at a time (~2x faster for 60,000 acks in a fresh process).
  const templates = shapes.map((keys) => Object.fromEntries(keys.map((k) => [k, null])));
  const read = new VarintReader(Buffer.from(index.records, 'base64'));
  const out: IndexedAck[] = [];
  for (let n = 0; n < count; n++) {
    const s = read.next();
    const keys = shapes[s];
    if (keys === undefined) return null;
    const signed: Record<string, unknown> = { ...templates[s] };
    for (const k of keys) {
      const u = read.next();
      if (u < 0) return null;
      // Odd: the digest of the record (u + 1) / 2 places earlier; even: a value position.
      const earlier = u % 2 === 1 ? out[n - (u + 1) / 2] : undefined;
      if (u % 2 === 1 && earlier === undefined) return null;
      if (u % 2 === 0 && u / 2 >= values.length) return null;
      signed[k] = earlier === undefined ? values[u / 2] : earlier.digest;
    }
    out.push({ digest: indexedDigest(index, n), signed: signed as unknown as AckRecord });
  }
  return read.done ? out : null;
}

export function deepFreeze(v: object): void {
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
    typeof x.digests === 'string' &&
    // Each position is checked as it is decoded (decodeLogPrefixIndex).
    typeof x.records === 'string'
    ? (x as LogPrefixIndex)
    : null;
}
