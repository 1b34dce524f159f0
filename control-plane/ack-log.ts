// The ack endpoint's append-only log (the record format is protocol/ack-log.ts). An append resolves
// only after the bytes are on disk (fdatasync), so a 2xx answer means durable.
// Group commit: appends that arrive while a flush is in progress are written and synced together in
// the next flush, so one fsync pays for many acks.
// Recovery: a record cut short or failing its checksum at the end of the file is a torn tail from a
// crash mid-write (it was never acknowledged) and is cut; a bad record followed by good ones is
// corruption, and the log refuses to open rather than silently drop acknowledged acks.
// A failed append (disk full, I/O error) makes the log unavailable for a back-off period, then the next
// append first cuts whatever the failed write left past the last durable record (the same torn-tail cut
// as on open) and tries again: the endpoint heals by itself once writes succeed, without a restart.
// Snapshots (acks.snapshot, next to the log): the endpoint's chain state after the first N bytes of the
// log, so start-up reads the snapshot and only the records after it instead of replaying every ack. The
// snapshot names the digest of the record that ends at its byte offset; a log that does not have that
// record there (restored, replaced, cut shorter) is replayed in full instead. The log itself is never
// rewritten, so `nixfleet verify --acks` and every history reader still see the whole chain.
// Segments (protocol/ack-log.ts lists them): once the current segment passes `segmentBytes` after a
// flush (so at a record boundary, fdatasynced), the log creates the next-numbered segment, fsyncs it
// and its directory, and appends there. The highest-numbered segment is the current one by definition,
// so a crash at any step leaves exactly one: either the new empty file exists (and is current) or it
// does not (and the old one still is); nothing acknowledged is in flight during a roll. A snapshot
// names the segment and offset it covers, so start-up reads only that segment's tail and the ones after.
// Sealed segments before the snapshot's may be archived (archiveAckSegments), leaving a floor file.
import { open, type FileHandle } from 'node:fs/promises';
import {
  mkdirSync,
  existsSync,
  readFileSync,
  statSync,
  truncateSync,
  openSync,
  fsyncSync,
  closeSync,
  readSync,
} from 'node:fs';
import { copyFileSync, renameSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  AckLogCorrupt,
  ackFloorName,
  ackSegmentName,
  formatRecord,
  fsyncDir,
  listAckFloors,
  listAckLogSegments,
  parseAckLog,
  readAckFloor,
  writeAckFloor,
  type AckFloorHead,
  type AckLogSegment,
  type LogRecord,
  sha256Digest,
  LIMITS,
  writeFileAtomic,
} from '../protocol/index.ts';
import type { ChainFloor } from './ack-chain.ts';

export const ACK_SNAPSHOT_FILE = 'acks.snapshot';

/**
 * Where a snapshot ends in the log: a segment, the byte offset in it and the digest of the record
 * ending there (at offset 0 of a later segment: the last record of the segments before it).
 */
export interface LogPosition {
  /** Segment index (absent in snapshots written before segments: 0, acks.log). */
  segment: number;
  bytes: number;
  /** null for the empty prefix. */
  lastDigest: string | null;
}

/** One host's chain state in a snapshot (control-plane/ack-chain.ts ChainHead without the promises). */
export interface SnapshotHead {
  host: string;
  seq: number;
  digest: string;
  canonical: string;
  floor: ChainFloor;
  /** Held runs below a gap (ack-chain.ts HeldRuns), keyed by their top digest; omitted when none. */
  runs?: [string, ChainFloor][];
}

export interface AckLogSnapshot {
  type: 'ack-log-snapshot';
  version: 1;
  at: LogPosition;
  heads: SnapshotHead[];
}

/**
 * Reads the snapshot in `dir`, or null when there is none or it cannot be used (checksum, framing or
 * format): start-up then replays the whole log, so a bad snapshot costs time, never acks.
 */
export function readAckSnapshot(dir: string): {
  snapshot: AckLogSnapshot | null;
  problem?: string;
} {
  const path = join(dir, ACK_SNAPSHOT_FILE);
  if (!existsSync(path)) return { snapshot: null };
  try {
    const parsed = parseAckLog(readFileSync(path), path);
    if (parsed.records.length !== 1 || parsed.tornBytes !== 0)
      return { snapshot: null, problem: `${path}: not one complete, checksummed record` };
    const snap = JSON.parse(parsed.records[0]!.canonical) as AckLogSnapshot;
    if (
      snap.type !== 'ack-log-snapshot' ||
      snap.version !== 1 ||
      !Number.isSafeInteger(snap.at?.bytes) ||
      !Array.isArray(snap.heads)
    ) {
      return { snapshot: null, problem: `${path}: not a version 1 ack log snapshot` };
    }
    snap.at.segment ??= 0;
    if (!Number.isSafeInteger(snap.at.segment) || snap.at.segment < 0)
      return { snapshot: null, problem: `${path}: at.segment is not a segment index` };
    return { snapshot: snap };
  } catch (e) {
    return { snapshot: null, problem: `${path}: ${(e as Error).message}` };
  }
}

/** Writes a snapshot atomically, framed and checksummed like a log record. */
export function writeAckSnapshot(dir: string, snap: AckLogSnapshot): void {
  const body = JSON.stringify(snap);
  writeFileAtomic(
    join(dir, ACK_SNAPSHOT_FILE),
    formatRecord({ digest: sha256Digest(body), canonical: body }),
    { mode: 0o640 },
  );
}

/** Longest record line: digest, tab, the largest ack, newline (canonical JSON is never longer than its input). */
const MAX_RECORD_BYTES = 72 + LIMITS.ack + 1;

/** Whether the log has `at`'s segment with exactly the record `at.lastDigest` ending at `at.bytes`. Null = yes. */
function checkFrom(segments: AckLogSegment[], at: LogPosition): string | null {
  const seg = segments.find((s) => s.index === at.segment);
  if (!seg) return `the log has no segment ${ackSegmentName(at.segment)}, the snapshot covers it`;
  const size = existsSync(seg.file) ? statSync(seg.file).size : 0;
  if (at.bytes === 0 && at.segment > 0) return null; // a segment's start: nothing in it to compare
  return checkPosition(seg.file, size, at);
}

/** Whether the segment file has exactly the record `at.lastDigest` ending at byte `at.bytes`. Null = yes. */
function checkPosition(path: string, size: number, at: LogPosition): string | null {
  if (at.bytes === 0) return at.lastDigest === null ? null : 'an empty prefix with a last digest';
  if (at.bytes > size) return `the log has ${size} bytes, the snapshot covers ${at.bytes}`;
  const start = Math.max(0, at.bytes - MAX_RECORD_BYTES);
  const buf = readTail(path, start, at.bytes);
  const lineStart = buf.lastIndexOf(0x0a, buf.length - 2) + 1;
  if (lineStart === 0 && start > 0) return 'no record boundary before the snapshot offset';
  const rec = parseAckLog(buf.subarray(lineStart), path);
  if (rec.records.length !== 1 || rec.tornBytes !== 0)
    return `no complete record ends at byte ${at.bytes}`;
  if (rec.records[0]!.digest !== at.lastDigest)
    return `the record ending at byte ${at.bytes} is ${rec.records[0]!.digest}, the snapshot names ${at.lastDigest}`;
  return null;
}

interface Pending {
  digest: string;
  bytes: Buffer;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface AckLogOptions {
  /** Batch concurrent appends into one write + fdatasync (default true). */
  groupCommit?: boolean;
  /** Clock (ms) for the back-off after a failed append, injectable for tests. */
  now?: () => number;
  /**
   * Read the log only after this position (a snapshot's). If the log does not have the snapshot's
   * record there, the whole log is read instead and OpenedLog.from is 0 (with the reason).
   */
  from?: LogPosition;
  /** Called when a flush made every queued append durable and nothing is pending (snapshot point). */
  onIdle?: () => void;
  /** Start a new segment once the current one holds this many bytes (default DEFAULT_SEGMENT_BYTES). */
  segmentBytes?: number;
  /** Called after a roll to segment `index` (the state then matches the log at the next onIdle). */
  onRoll?: (index: number) => void;
  /** Called when a roll failed: appends go on into the current segment and the roll is retried. */
  onRollFailed?: (e: Error) => void;
}

/**
 * A segment is sealed once it passes 8 MiB. Everything that must prove a growing log unchanged before
 * its new records pays for the current segment only: the operator views re-hash the current segment's
 * verified prefix (a stat cannot prove an appended file's earlier bytes unchanged) and re-encode and
 * re-seal its index, so at 64 MiB a served `trace` spent ~0.1-0.2 s per look on the one segment growing
 * (docs/benchmarks.md "views-served"). Large enough for few files: a million acks of about 1 KB make
 * ~120 segments, and a 10,000-host fleet heartbeating every 5 minutes rolls about every 5 minutes.
 */
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024;

/**
 * Back-off after a failed append: the first retry after 1 s (space is often freed quickly, e.g. a
 * rotated log elsewhere), doubling up to 30 s so a disk that stays full costs one failing write per
 * 30 s rather than one per incoming ack.
 */
export const APPEND_RETRY_FIRST_MS = 1000;
export const APPEND_RETRY_MAX_MS = 30_000;

/** The log refuses appends until `retryAt` (ms) after a failed write; the answer is 503 + Retry-After. */
export class AckLogUnavailable extends Error {
  constructor(
    readonly file: string,
    readonly retryAt: number,
    readonly writeError: Error,
  ) {
    super(
      `${file}: append failed (${writeError.message}); the log retries by itself at ${new Date(retryAt).toISOString()}`,
    );
    this.name = 'AckLogUnavailable';
  }
}

export interface OpenedLog {
  log: AckLog;
  /** The records after `from` (every segment's when the position was not used). */
  records: LogRecord[];
  /** Whether the records start at the requested position (else at the first segment's start). */
  fromUsed: boolean;
  /** The segments read (from the position's segment, or all). */
  segmentsRead: number;
  /** Why the requested position was not used (the whole log was read). */
  fromRejected?: string;
  /** Bytes cut from a torn tail during recovery. */
  cutBytes: number;
}

export class AckLog {
  private queue: Pending[] = [];
  private flushing = false;
  /** Set by a failed append: appends are refused until retryAt, then the torn tail is cut and writes resume. */
  private failure: { error: AckLogUnavailable; backoffMs: number } | null = null;
  /** The file may hold bytes of a failed write after `size`: cut them before the next write. */
  private tornTail = false;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | null = null;
  /** Appends made durable, fsync calls spent on them (for benchmarks), and segment rolls. */
  stats = { appended: 0, syncs: 0, rolls: 0 };
  private readonly segmentBytes: number;

  private constructor(
    readonly dir: string,
    /** Index of the current segment (the highest-numbered). */
    private segment: number,
    private fh: FileHandle,
    private size: number,
    /** Digest of the last durable record (null for an empty log). */
    private lastDigest: string | null,
    private readonly opts: AckLogOptions,
  ) {
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  }

  /** The current segment's file. */
  get path(): string {
    return join(this.dir, ackSegmentName(this.segment));
  }

  /** The durable end of the log: what a snapshot taken now covers. */
  get position(): LogPosition {
    return { segment: this.segment, bytes: this.size, lastDigest: this.lastDigest };
  }

  /**
   * Opens (creating) the log in `dir`: reads the segments from `opts.from` (or all of them), recovers
   * a torn tail of the current segment. A sealed segment ending in a partial record is corruption: a
   * roll happens only after the segment was fdatasynced at a record boundary.
   */
  static async open(dir: string, opts: AckLogOptions = {}): Promise<OpenedLog> {
    mkdirSync(dir, { recursive: true });
    const listed = listAckLogSegments(dir);
    const segments =
      listed.length > 0 ? listed : [{ index: 0, file: join(dir, ackSegmentName(0)) }];
    const current = segments[segments.length - 1]!;
    let first = 0;
    let offset = 0;
    let fromRejected: string | undefined;
    let lastDigest: string | null = null;
    if (opts.from) {
      fromRejected = checkFrom(segments, opts.from) ?? undefined;
      if (fromRejected === undefined) {
        first = segments.findIndex((s) => s.index === opts.from!.segment);
        offset = opts.from.bytes;
        lastDigest = opts.from.lastDigest;
      }
    }
    const records: LogRecord[] = [];
    let size = 0;
    let cutBytes = 0;
    for (let i = first; i < segments.length; i++) {
      const seg = segments[i]!;
      if (!existsSync(seg.file)) continue; // the current segment of a new log
      const from = i === first ? offset : 0;
      const fileSize = statSync(seg.file).size;
      const bytes = from === 0 ? readFileSync(seg.file) : readTail(seg.file, from, fileSize);
      const parsed = parseAckLog(bytes, from === 0 ? seg.file : `${seg.file} (after byte ${from})`);
      for (const r of parsed.records) records.push(r);
      if (parsed.records.length > 0) lastDigest = parsed.records[parsed.records.length - 1]!.digest;
      const end = from + parsed.validBytes;
      if (seg !== current) {
        if (parsed.tornBytes === 0) continue;
        // Only the segment appends went to can end torn: one whose later segments are all empty (a
        // roll that created the next one failed, appends went on here, then a crash mid-write).
        if (segments.slice(i + 1).some((s) => existsSync(s.file) && statSync(s.file).size > 0))
          throw new AckLogCorrupt(seg.file, end, 'a sealed segment ends in a partial record');
        cutBytes += cutTail(seg.file, end, parsed.tornBytes);
        continue;
      }
      size = end;
      if (parsed.tornBytes > 0) cutBytes += cutTail(seg.file, end, parsed.tornBytes);
    }
    const path = current.file;
    const fh = await open(path, existsSync(path) ? 'r+' : 'w+', 0o640);
    if (size !== statSync(path).size) {
      await fh.close();
      throw new Error(`${path}: size changed during recovery`);
    }
    const log = new AckLog(dir, current.index, fh, size, lastDigest, opts);
    return {
      log,
      records,
      fromUsed: opts.from !== undefined && fromRejected === undefined,
      segmentsRead: segments.length - first,
      ...(fromRejected !== undefined ? { fromRejected } : {}),
      cutBytes,
    };
  }

  /** Resolves once the record is on disk. */
  append(rec: LogRecord): Promise<void> {
    const refusal = this.unavailable();
    if (refusal) return Promise.reject(refusal);
    if (this.closed) return Promise.reject(new Error(`${this.path}: log is closed`));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ digest: rec.digest, bytes: formatRecord(rec), resolve, reject });
      if (!this.flushing) void this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    this.idle = new Promise((r) => (this.idleResolve = r));
    while (this.queue.length > 0) {
      const batch =
        this.opts.groupCommit === false ? this.queue.splice(0, 1) : this.queue.splice(0);
      const buf =
        batch.length === 1 ? (batch[0] as Pending).bytes : Buffer.concat(batch.map((p) => p.bytes));
      try {
        if (this.tornTail) await this.cutTornTail();
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, this.size + off);
          off += bytesWritten;
        }
        await this.fh.datasync();
        this.size += buf.length;
        this.lastDigest = batch[batch.length - 1]!.digest;
        this.stats.appended += batch.length;
        this.stats.syncs++;
        this.failure = null;
        for (const p of batch) p.resolve();
        if (this.size >= this.segmentBytes) await this.roll();
      } catch (e) {
        // The file may now end in a partial record (a short write before ENOSPC): cut it before the next
        // write. Nothing of this batch was acknowledged, so every waiting append fails with it.
        this.tornTail = true;
        const backoffMs = this.failure
          ? Math.min(this.failure.backoffMs * 2, APPEND_RETRY_MAX_MS)
          : APPEND_RETRY_FIRST_MS;
        const now = (this.opts.now ?? Date.now)();
        const error = new AckLogUnavailable(this.path, now + backoffMs, e as Error);
        this.failure = { error, backoffMs };
        for (const p of batch) p.reject(error);
        for (const p of this.queue.splice(0)) p.reject(error);
      }
    }
    this.flushing = false;
    this.idleResolve?.();
    if (this.failure === null && !this.closed) this.opts.onIdle?.();
  }

  /**
   * Starts the next segment (called between flushes: the current one is fdatasynced and ends at a
   * record boundary). The new file and its directory entry are made durable before any record goes
   * there. A failure leaves the current segment current (the roll is retried after the next flush);
   * an empty next segment left by an earlier failed roll, or a crash, is taken as it is.
   */
  private async roll(): Promise<void> {
    const next = this.segment + 1;
    const path = join(this.dir, ackSegmentName(next));
    let fh: FileHandle;
    try {
      try {
        fh = await open(path, 'wx', 0o640);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const st = statSync(path);
        if (!st.isFile() || st.size !== 0)
          throw new Error(`${path}: exists and is not an empty segment`);
        fh = await open(path, 'r+');
      }
      try {
        await fh.datasync();
        fsyncDir(this.dir);
      } catch (e) {
        await fh.close();
        // Best effort: an empty next segment left here would be current after a crash (harmless,
        // open handles it), but it is clearer gone.
        try {
          unlinkSync(path);
        } catch {
          /* the retry takes it as it is */
        }
        throw e;
      }
    } catch (e) {
      this.opts.onRollFailed?.(e as Error);
      return;
    }
    const sealed = this.fh;
    this.fh = fh;
    this.segment = next;
    this.size = 0;
    this.stats.rolls++;
    // The sealed segment's bytes are fdatasynced; a failing close loses nothing.
    await sealed.close().catch(() => undefined);
    this.opts.onRoll?.(next);
  }

  /**
   * Cuts what a failed write left after the last durable record, as recovery on open does. The bytes
   * before `size` were fdatasynced by an earlier flush; only a failed flush's bytes go.
   */
  private async cutTornTail(): Promise<void> {
    await this.fh.truncate(this.size);
    await this.fh.datasync();
    this.tornTail = false;
  }

  /** The refusal while the log backs off after a failed append; null once an append may be tried. */
  unavailable(): AckLogUnavailable | null {
    if (this.failure && (this.opts.now ?? Date.now)() < this.failure.error.retryAt)
      return this.failure.error;
    return null;
  }

  /** Resolves when no flush (nor the roll after it) is in progress. */
  async settled(): Promise<void> {
    while (this.flushing) await this.idle;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.flushing) await this.idle;
    // The idle point a closed log's last flush does not report (flushLoop): reported here, once nothing
    // can be appended any more, so that a roll that flush made still gets its snapshot (onIdle). A
    // stopped endpoint never reaches a next idle point: its next start-up would replay from the previous
    // snapshot, and archiving the segments before the roll would wait for a snapshot that never comes.
    if (this.failure === null) this.opts.onIdle?.();
    await this.fh.close();
  }
}

/** Cuts a torn tail (never acknowledged) at `size`, durably; returns the bytes cut. */
function cutTail(path: string, size: number, tornBytes: number): number {
  truncateSync(path, size);
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tornBytes;
}

/** The bytes of `path` from `from` to `size`. */
function readTail(path: string, from: number, size: number): Buffer {
  const buf = Buffer.alloc(size - from);
  const fd = openSync(path, 'r');
  try {
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, from + off);
      if (n === 0) break;
      off += n;
    }
    return off === buf.length ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

export interface ArchiveResult {
  /** The segment files moved, by their new paths. */
  moved: string[];
  /** The floor written for the first segment left in the log. */
  floor: string;
}

/**
 * Moves the sealed segments of the log in `dir` below segment `before` to `toDir`, after writing the
 * floor of segment `before` (every host's head as of its start, from the archived records and the
 * floor they started at). Refused when that would move the current segment, or history the
 * endpoint's snapshot does not cover (its start-up would then have to replay segments no longer
 * there). Safe to re-run after a crash: the floor is written first, and moved files are not in
 * `dir` any more.
 */
export function archiveAckSegments(dir: string, before: number, toDir: string): ArchiveResult {
  const segments = listAckLogSegments(dir);
  const current = segments[segments.length - 1];
  if (!current) throw new Error(`${dir}: holds no ack log segments`);
  if (before > current.index)
    throw new Error(
      `${dir}: segment ${before} is after the current segment ${current.index}; the current segment is never archived`,
    );
  const { snapshot, problem } = readAckSnapshot(dir);
  if (!snapshot || snapshot.at.segment < before)
    throw new Error(
      `${join(dir, ACK_SNAPSHOT_FILE)}: ${snapshot ? `covers only up to segment ${snapshot.at.segment}` : (problem ?? 'missing')}; archiving before segment ${before} needs a snapshot at or after it (the endpoint writes one at each roll)`,
    );
  const moving = segments.filter((s) => s.index < before);
  const floors = listAckFloors(dir);
  const heads = new Map<string, AckFloorHead>();
  const startFloor = moving[0] && floors.find((f) => f.index === moving[0]!.index);
  if (startFloor) for (const h of readAckFloor(startFloor.file).heads) heads.set(h.host, h);
  for (const seg of moving) {
    const parsed = parseAckLog(readFileSync(seg.file), seg.file);
    if (parsed.tornBytes > 0)
      throw new AckLogCorrupt(
        seg.file,
        parsed.validBytes,
        'a sealed segment ends in a partial record',
      );
    // Log order is acceptance order: a host's last record with its highest seq is its head (as replay).
    for (const r of parsed.records) {
      const { host, seq } = (JSON.parse(r.canonical) as { signed: { host: string; seq: number } })
        .signed;
      const cur = heads.get(host);
      if (!cur || seq >= cur.seq) heads.set(host, { host, seq, digest: r.digest });
    }
  }
  const floorFile = join(dir, ackFloorName(before));
  if (moving.length > 0 || !existsSync(floorFile))
    writeAckFloor(floorFile, { segment: before, heads: [...heads.values()] });
  mkdirSync(toDir, { recursive: true });
  const moved: string[] = [];
  for (const f of [...moving, ...floors.filter((f) => f.index < before)]) {
    const to = join(toDir, basename(f.file));
    moveDurably(f.file, to);
    moved.push(to);
  }
  fsyncDir(toDir);
  fsyncDir(dir);
  return { moved, floor: floorFile };
}

/** rename, or across file systems a copy made durable before the original goes. */
function moveDurably(from: string, to: string): void {
  try {
    renameSync(from, to);
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
  }
  copyFileSync(from, to);
  const fd = openSync(to, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  unlinkSync(from);
}
