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
// records' chain digests as their SHA-256 bytes, 32 each, in one base64 string (v3; v2 kept them as
// `sha256:<hex>` text, 71 characters each: 4.3 of a 10,000-host trace's 6.7 MB index, read, sealed,
// decoded and copied by JSON.parse on every warm trace; as bytes they are 2.6 MB), and per record its shape and a
// value per key as unsigned LEB128 varints (base64): a value position p as 2p, a `prev` that is the
// digest of the record d places earlier (nearly all: the hash chain) as 2d - 1. A warm trace parses
// a few long strings instead of ~60,000 digest strings and ~1,000,000 numbers (v1: JSON arrays of
// both), and keeps neither array on its heap.
//
// Read as IndexedRecords: one pass over the varints gives each record's host, fleet and signed time as
// typed-array columns, and an ack object is built only for a record asked for (a trace resumed from a
// replay checkpoint, `replays`, builds a few thousand: read-side/trace-replay.ts).
import { isSha256Digest } from '../protocol/index.ts';
import { parseAckTime, type AckRecord, type TraceCheckpoint } from '../reconciler/index.ts';
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
  /**
   * Each record's chain digest (its identity in the history), in log order: the SHA-256 bytes
   * (DIGEST_BYTES each) of the `sha256:<hex>` digests, as one base64 string.
   */
  digests: string;
  /** Per record: its shape, then a value per key (see Form above), as varints in base64. */
  records: string;
  /**
   * Traces' replay states part-way through these records (read-side/trace.ts), newest first: a trace
   * of the same key resumes from one instead of replaying the records before it.
   */
  replays?: StoredReplay[];
}

/**
 * A trace's replay checkpoint (reconciler/trace.ts TraceCheckpoint) kept with the index whose records
 * it replayed: its acks as record numbers of the index.
 */
export interface StoredReplay {
  /** What was replayed, as read-side/trace.ts replayKey gives it (release, subject, period, code). */
  key: string;
  /** The records it covers: the index's first `records` (an index extended since keeps them first). */
  records: number;
  /**
   * A log of several segments (or logs) read as one sequence (read-side/trace-replay.ts): the
   * prefixes before this index's, all of whose records it covers too (each as its trust fingerprint
   * and prefix digest); record numbers count from the first of them.
   */
  before?: string[];
  /** The state, without the acks (TraceCheckpoint.acks). */
  checkpoint: Omit<TraceCheckpoint, 'acks'>;
  /** The record numbers of TraceCheckpoint.acks. */
  acks: number[];
}

const DIGEST_PREFIX = 'sha256:';
/** The bytes of one SHA-256. */
const DIGEST_BYTES = 32;

/**
 * The index's digests as bytes (decoded once per index object); null when `digests` is not the base64
 * of whole digests (a damaged file: then the prefix is read in full).
 */
function digestBytes(index: LogPrefixIndex): Buffer | null {
  let bytes = decodedDigests.get(index);
  if (bytes === undefined) {
    const b = Buffer.from(index.digests, 'base64');
    // Buffer.from skips what is not base64: the text must be as long as the encoding of whole digests.
    const whole = b.length % DIGEST_BYTES === 0;
    bytes = whole && index.digests.length === 4 * Math.ceil(b.length / 3) ? b : null;
    decodedDigests.set(index, bytes);
  }
  return bytes;
}
const decodedDigests = new WeakMap<LogPrefixIndex, Buffer | null>();
const openedRecords = new WeakMap<LogPrefixIndex, IndexedRecords | null>();

/** Lowercase hex digits' character codes, by value. */
const HEX = [...'0123456789abcdef'].map((c) => c.charCodeAt(0));

/**
 * Whether digest `n` of `bytes` is `digest` (`sha256:` and lowercase hex), compared in place: no string
 * or Buffer per comparison (a latest-ack file is looked up among its host's records, ~6,700 lookups of
 * a warm 10,000-host trace, and nearly every comparison differs in its first byte).
 */
function digestIs(bytes: Uint8Array, n: number, digest: string): boolean {
  if (digest.length !== DIGEST_PREFIX.length + 2 * DIGEST_BYTES) return false;
  if (!digest.startsWith(DIGEST_PREFIX)) return false;
  const from = n * DIGEST_BYTES;
  for (let i = 0, c = DIGEST_PREFIX.length; i < DIGEST_BYTES; i++, c += 2) {
    const b = bytes[from + i]!;
    if (digest.charCodeAt(c) !== HEX[b >> 4] || digest.charCodeAt(c + 1) !== HEX[b & 15])
      return false;
  }
  return true;
}

/** Digest `n` of `bytes` in its text form (`sha256:` and lowercase hex). */
function digestAt(bytes: Buffer, n: number): string {
  const at = n * DIGEST_BYTES;
  return `${DIGEST_PREFIX}${bytes.toString('hex', at, at + DIGEST_BYTES)}`;
}

/** Whether digest `n` of `a` and digest `m` of `b` are the same (compared in place). */
function sameDigests(a: Buffer, n: number, b: Buffer, m: number): boolean {
  const x = n * DIGEST_BYTES;
  const y = m * DIGEST_BYTES;
  return a.compare(b, y, y + DIGEST_BYTES, x, x + DIGEST_BYTES) === 0;
}

/**
 * Chain digests (DIGEST_BYTES each, in blocks: a log's segments' indexes, in log order) looked up as
 * one: each digest filed once, under the first record that has it, in an open-addressing table of
 * (block, record number) placed by the digest's first 4 bytes (a SHA-256's: uniform) and confirmed by
 * comparing the whole digest in place. No string, object or map entry per record: ~100,000 records are
 * filed in a few milliseconds (a Map keyed by 48-bit heads took ~25 ms, on every trace whose index
 * grew: docs/benchmarks.md "views-served"). Filed as the blocks are taken in, so whether a record repeats
 * one before it, in its block or an earlier one, is one probe, and so is finding a digest among all of
 * them: asking each earlier segment's index in turn cost a trace of a log of ~90 segments (100,000
 * hosts) ~40 million lookups, ~0.85 s.
 */
export class DigestTable {
  private readonly blocks: Buffer[] = [];
  /**
   * Per slot: the block + 1 (0: empty), the record number in it, and its digest's head (compared
   * before the whole digest: a slot taken by another digest costs no compare).
   */
  private slotBlock = new Int32Array(16);
  private slotRecord = new Int32Array(16);
  private slotHead = new Int32Array(16);
  private filed = 0;

  /** Makes room for `records` more records at once (instead of growing as blocks are added). */
  expect(records: number): void {
    this.reserve(2 * (this.filed + records));
  }

  /**
   * Files the next block's digests; per record, 1 when a record before it (an earlier block's, or an
   * earlier one of its own) has its digest.
   */
  add(digests: Buffer): Uint8Array {
    const b = this.blocks.push(digests) - 1;
    const count = digests.length / DIGEST_BYTES;
    // At most half full, so that a probe always meets an empty slot soon.
    this.reserve(2 * (this.filed + count));
    const repeats = new Uint8Array(count);
    for (let n = 0; n < count; n++)
      if (this.file(b, n) === false) repeats[n] = 1;
      else this.filed++;
    return repeats;
  }

  /**
   * The block and record number of the first record with chain digest `digest`; null: none (or not a
   * chain digest's text).
   */
  find(digest: string): { block: number; n: number } | null {
    // Most readers add no block (only a trace defers indexes): their every lookup ends here.
    if (this.filed === 0) return null;
    if (digest.length !== DIGEST_PREFIX.length + 2 * DIGEST_BYTES) return null;
    const head = Number.parseInt(digest.slice(DIGEST_PREFIX.length, DIGEST_PREFIX.length + 8), 16);
    if (Number.isNaN(head)) return null;
    const mask = this.slotBlock.length - 1;
    for (let s = head & mask; ; s = (s + 1) & mask) {
      const b = this.slotBlock[s]!;
      if (b === 0) return null;
      if (digestIs(this.blocks[b - 1]!, this.slotRecord[s]!, digest))
        return { block: b - 1, n: this.slotRecord[s]! };
    }
  }

  /** Files record `n` of block `b` in an empty slot; false (nothing filed) when its digest is filed already. */
  private file(b: number, n: number): boolean {
    const digests = this.blocks[b]!;
    const head = digests.readUInt32BE(n * DIGEST_BYTES) | 0;
    const mask = this.slotBlock.length - 1;
    for (let s = head & mask; ; s = (s + 1) & mask) {
      const sb = this.slotBlock[s]!;
      if (sb === 0) {
        this.slotBlock[s] = b + 1;
        this.slotRecord[s] = n;
        this.slotHead[s] = head;
        return true;
      }
      if (
        this.slotHead[s] === head &&
        sameDigests(digests, n, this.blocks[sb - 1]!, this.slotRecord[s]!)
      )
        return false;
    }
  }

  /** Grows the table to at least `slots` slots, filing again what it holds. */
  private reserve(slots: number): void {
    if (slots <= this.slotBlock.length) return;
    let size = this.slotBlock.length;
    while (size < slots) size *= 2;
    const [blocks, records] = [this.slotBlock, this.slotRecord];
    this.slotBlock = new Int32Array(size);
    this.slotRecord = new Int32Array(size);
    this.slotHead = new Int32Array(size);
    for (let s = 0; s < blocks.length; s++)
      if (blocks[s] !== 0) this.file(blocks[s]! - 1, records[s]!);
  }
}

/** How many records the index holds (0 when its digests are damaged: IndexedRecords.open refuses it). */
export function indexedRecordCount(index: LogPrefixIndex): number {
  return (digestBytes(index)?.length ?? 0) / DIGEST_BYTES;
}

/** The chain digest of record `n` of the index. */
export function indexedDigest(index: LogPrefixIndex, n: number): string {
  return digestAt(digestBytes(index)!, n);
}

/** Whether `index` begins with the first `count` records of `of` (the same acks, by their digests). */
export function beginsWithRecords(
  index: LogPrefixIndex,
  of: LogPrefixIndex,
  count: number,
): boolean {
  const mine = digestBytes(index);
  const theirs = digestBytes(of);
  const length = count * DIGEST_BYTES;
  return (
    mine !== null &&
    theirs !== null &&
    count <= indexedRecordCount(of) &&
    index.fingerprint === of.fingerprint &&
    mine.length >= length &&
    mine.compare(theirs, 0, length, 0, length) === 0
  );
}

/**
 * Whether `index` (under `fingerprint`) holds exactly the first records of a prefix read as the records
 * of `indexed` (none: undefined) followed by records of chain digests `after`: compared as digest bytes
 * where both are indexes (a trace that extends its index compares ~60,000 records), else in place.
 */
export function isIndexOfStart(
  index: LogPrefixIndex,
  fingerprint: string,
  indexed: LogPrefixIndex | undefined,
  after: readonly string[],
): boolean {
  const mine = digestBytes(index);
  const read = indexed === undefined ? Buffer.alloc(0) : digestBytes(indexed);
  if (mine === null || read === null || index.fingerprint !== fingerprint) return false;
  const known = mine.length / DIGEST_BYTES;
  const first = read.length / DIGEST_BYTES;
  if (known > first + after.length) return false;
  const shared = Math.min(known, first) * DIGEST_BYTES;
  if (mine.compare(read, 0, shared, 0, shared) !== 0) return false;
  for (let n = first; n < known; n++) if (!digestIs(mine, n, after[n - first]!)) return false;
  return true;
}

/** The chain digests of a prefix read as in isIndexOfStart, from record `from` on. */
export function recordDigestsFrom(
  indexed: LogPrefixIndex | undefined,
  after: readonly string[],
  from: number,
): string[] {
  const first = indexed === undefined ? 0 : indexedRecordCount(indexed);
  const out: string[] = [];
  for (let n = from; n < first; n++) out.push(indexedDigest(indexed!, n));
  return out.concat(after.slice(Math.max(0, from - first)));
}

/** An indexed record: its chain digest and its signed ack. */
export interface IndexedAck {
  digest: string;
  signed: AckRecord;
}

/**
 * The index of `acks` (log order) for the prefix `of`; null when a digest is not a chain digest
 * (isSha256Digest: then the prefix has no index and is read in full).
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
  const shapeOf = shapePositions(shapes);
  const known = base === undefined ? 0 : indexedRecordCount(base);
  // Only the new records' varints: the base's bytes are joined to them below, not copied into this
  // array (a number per byte: ~2 million at 10,000 hosts, ~0.3 s to spread, grow and encode again).
  const out = new VarintWriter();
  const baseDigests = base === undefined ? Buffer.alloc(0) : digestBytes(base);
  if (baseDigests === null) return null;
  // A `prev` is the first record with that digest: among the base's records (built on first use),
  // else among the new ones.
  let earlier: DigestTable | undefined;
  const recordOf = new Map<string, number>();
  const recordNumber = (d: string): number | undefined => {
    if (earlier === undefined && known > 0) (earlier = new DigestTable()).add(baseDigests);
    return earlier?.find(d)?.n ?? recordOf.get(d);
  };
  const digests = Buffer.alloc(acks.length * DIGEST_BYTES);
  for (const [i, { digest, signed }] of acks.entries()) {
    if (!isSha256Digest(digest)) return null;
    const n = known + i;
    digests.write(digest.slice(DIGEST_PREFIX.length), i * DIGEST_BYTES, 'hex');
    const keys = Object.keys(signed);
    out.write(shapeOf(keys));
    for (const k of keys) {
      const v = (signed as unknown as Record<string, unknown>)[k];
      const chained = k === 'prev' && typeof v === 'string' ? recordNumber(v) : undefined;
      out.write(chained === undefined ? 2 * valueAt(v) : 2 * (n - chained) - 1);
    }
    if (!recordOf.has(digest)) recordOf.set(digest, n);
  }
  const added = out.bytes();
  const records = (
    base === undefined ? added : Buffer.concat([Buffer.from(base.records, 'base64'), added])
  ).toString('base64');
  // The base's replay checkpoints cover its records, which this index begins with.
  const replays = base?.replays === undefined ? {} : { replays: base.replays };
  const allDigests = Buffer.concat([baseDigests, digests]).toString('base64');
  return { ...of, values, shapes, digests: allDigests, records, ...replays };
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

/** The position of a key list in `shapes` (added when new). */
export function shapePositions(shapes: string[][]): (keys: string[]) => number {
  const shapeAt = new Map<string, number>(shapes.map((keys, i) => [keys.join('\n'), i]));
  let last: { keys: string[]; s: number } | null = null;
  return (keys) => {
    // Acks share one key list or a few: compare with the last one before joining.
    if (last !== null && sameKeys(keys, last.keys)) return last.s;
    const k = keys.join('\n');
    let s = shapeAt.get(k);
    if (s === undefined) shapeAt.set(k, (s = shapes.push(keys) - 1));
    last = { keys, s };
    return s;
  };
}

/**
 * Unsigned LEB128 (7 bits a byte, low first, the high bit set on all but the last) into bytes that grow
 * by doubling: an index or memo is millions of bytes, which a plain number array held as a number each
 * (and grew, and copied into a Buffer once more).
 */
export class VarintWriter {
  private buf = new Uint8Array(1 << 16);
  private length = 0;

  write(u: number): void {
    if (this.length + 5 > this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf.subarray(0, this.length));
      this.buf = bigger;
    }
    while (u >= 0x80) {
      this.buf[this.length++] = (u & 0x7f) | 0x80;
      u >>>= 7;
    }
    this.buf[this.length++] = u;
  }

  /** The bytes written (a view, not a copy). */
  bytes(): Buffer {
    return Buffer.from(this.buf.buffer, 0, this.length);
  }
}

/** Reads varints of at most 28 bits from `bytes` in turn; -1 past the end or for a longer one. */
export class VarintReader {
  constructor(
    private readonly bytes: Uint8Array,
    public at = 0,
  ) {}

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
  const records = IndexedRecords.open(index);
  if (records === null) return null;
  const out: IndexedAck[] = [];
  for (let n = 0; n < records.count; n++)
    out.push({ digest: records.digest(n), signed: records.ack(n) });
  return out;
}

/**
 * An index's records without an ack object each: their digests, hosts, fleets and signed times read
 * from one pass over the varints, and a record's ack built only when asked for (ack(n)). A trace that
 * resumes from a replay checkpoint (read-side/trace.ts) builds the acks it replays, not ~60,000.
 */
export class IndexedRecords {
  readonly count: number;
  /** Each record's host, fleet and time as value positions, and its time (ms). */
  private readonly hostAt: Int32Array;
  private readonly fleetAt: Int32Array;
  readonly timeMs: Float64Array;
  /** Where each record's varints start in `bytes`. */
  private readonly starts: Uint32Array;
  private templates: Record<string, unknown>[] | undefined;

  private constructor(
    readonly index: LogPrefixIndex,
    /** The records' chain digests as bytes (DIGEST_BYTES each). */
    readonly digests: Buffer,
    private readonly bytes: Uint8Array,
  ) {
    const count = digests.length / DIGEST_BYTES;
    this.count = count;
    this.hostAt = new Int32Array(count);
    this.fleetAt = new Int32Array(count);
    this.timeMs = new Float64Array(count);
    this.starts = new Uint32Array(count);
  }

  /**
   * The records of `index`; null when it is not well formed: a shape or value position out of range, a
   * `prev` before the first record, bytes left over, or a record without a string host and fleet and
   * an ack time (a sealed index holds verified acks only: that is a damaged file, read in full). Opened
   * once per index object (as its digests are decoded once): a view server keeps its indexes from look
   * to look, and scanning every segment's varints again cost each trace ~20 ms at 10,000 hosts, ~90 ms
   * at 100,000. An index is never changed in place (an extended one is a new object).
   */
  static open(index: LogPrefixIndex): IndexedRecords | null {
    let opened = openedRecords.get(index);
    if (opened === undefined) {
      const digests = digestBytes(index);
      const r =
        digests === null
          ? null
          : new IndexedRecords(index, digests, Buffer.from(index.records, 'base64'));
      opened = r?.scan() ? r : null;
      openedRecords.set(index, opened);
    }
    return opened;
  }

  /** Fills the columns from the varints; false when a record is not well formed. */
  private scan(): boolean {
    const { values, shapes } = this.index;
    const roles = shapes.map((keys) => keys.map((k) => ROLES.indexOf(k)));
    const timeOfValue = new Map<number, number>();
    const read = new VarintReader(this.bytes);
    for (let n = 0; n < this.count; n++) {
      this.starts[n] = read.at;
      const role = roles[read.next()];
      if (role === undefined) return false;
      this.hostAt[n] = this.fleetAt[n] = -1;
      let time = -1;
      for (const k of role) {
        const u = read.next();
        if (u < 0 || (u % 2 === 1 ? (u + 1) / 2 > n : u / 2 >= values.length)) return false;
        if (k === HOST) this.hostAt[n] = u / 2;
        else if (k === FLEET) this.fleetAt[n] = u / 2;
        else if (k === TIME) time = u / 2;
      }
      // A host, fleet or time given as a chain digest (an odd varint) is not an integer position.
      const host = values[this.hostAt[n]!];
      const fleet = values[this.fleetAt[n]!];
      const at = values[time];
      if (typeof host !== 'string' || typeof fleet !== 'string' || typeof at !== 'string')
        return false;
      let ms = timeOfValue.get(time);
      if (ms === undefined) timeOfValue.set(time, (ms = ackTimeMs(at)));
      if (Number.isNaN(ms)) return false;
      this.timeMs[n] = ms;
    }
    return read.done;
  }

  /** Record `n`'s chain digest. */
  digest(n: number): string {
    return digestAt(this.digests, n);
  }

  /** Record `n`'s host and fleet as value positions: records with equal ones make the same claims. */
  hostPosition(n: number): number {
    return this.hostAt[n]!;
  }

  fleetPosition(n: number): number {
    return this.fleetAt[n]!;
  }

  /** How many distinct values the index holds (value positions are below it). */
  get valueCount(): number {
    return this.index.values.length;
  }

  host(n: number): string {
    return this.index.values[this.hostAt[n]!] as string;
  }

  fleet(n: number): string {
    return this.index.values[this.fleetAt[n]!] as string;
  }

  /**
   * Record `n`'s signed ack, built from its shape's template (its keys, in order: one object copy
   * instead of a property added at a time). Composite values (probe lists) are shared between the
   * acks that carry them, so they are frozen.
   */
  ack(n: number): AckRecord {
    const { values, shapes } = this.index;
    this.templates ??= this.frozenTemplates();
    const read = new VarintReader(this.bytes, this.starts[n]!);
    const s = read.next();
    const signed: Record<string, unknown> = { ...this.templates[s] };
    for (const k of shapes[s]!) {
      const u = read.next();
      // Odd: the digest of the record (u + 1) / 2 places earlier; even: a value position (scan checked both).
      signed[k] = u % 2 === 1 ? this.digest(n - (u + 1) / 2) : values[u / 2];
    }
    return signed as unknown as AckRecord;
  }

  private frozenTemplates(): Record<string, unknown>[] {
    for (const v of this.index.values) if (v !== null && typeof v === 'object') deepFreeze(v);
    return this.index.shapes.map((keys) => Object.fromEntries(keys.map((k) => [k, null])));
  }
}

/** The fields the columns hold (their positions in ROLES). */
const ROLES = ['host', 'fleet', 'time'];
const HOST = 0;
const FLEET = 1;
const TIME = 2;

/** An ack time's ms (reconciler parseAckTime), NaN when `text` is not of its form. */
function ackTimeMs(text: string): number {
  return /^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$/.test(text)
    ? parseAckTime(text)
    : NaN;
}

export function deepFreeze(v: object): void {
  Object.freeze(v);
  for (const x of Object.values(v)) if (x !== null && typeof x === 'object') deepFreeze(x);
}

/**
 * One line of a sealed index file (read-side/verified-cache.ts), or null. The shape is checked; the
 * contents are the sealing run's (IndexedRecords.open checks positions).
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
    // Each position is checked as it is read (IndexedRecords.open).
    typeof x.records === 'string'
    ? withWellFormedReplays(x as LogPrefixIndex)
    : null;
}

/**
 * The index without its replays when they are not of StoredReplay's shape (the index itself is still
 * of use). Their contents are the sealing run's; record numbers are checked where they are used.
 */
function withWellFormedReplays(x: LogPrefixIndex): LogPrefixIndex {
  const r = x.replays as unknown;
  if (r === undefined || (Array.isArray(r) && r.every(isStoredReplay))) return x;
  const { replays: _, ...index } = x;
  return index;
}

function isStoredReplay(r: unknown): r is StoredReplay {
  const x = r as Partial<StoredReplay> | null;
  const c = x?.checkpoint as Partial<StoredReplay['checkpoint']> | undefined;
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.key === 'string' &&
    Number.isSafeInteger(x.records) &&
    (x.before === undefined ||
      (Array.isArray(x.before) && x.before.every((b) => typeof b === 'string'))) &&
    Array.isArray(x.acks) &&
    // With prefixes before it, its numbers count from theirs (checked against them where used).
    x.acks.every(
      (n) => Number.isSafeInteger(n) && n >= 0 && (x.before !== undefined || n < x.records!),
    ) &&
    typeof c === 'object' &&
    c !== null &&
    typeof c.at === 'number' &&
    Array.isArray(c.state) &&
    Array.isArray(c.hosts) &&
    Array.isArray(c.entries)
  );
}
