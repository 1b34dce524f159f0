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
import { join } from 'node:path';
import {
  ACK_LOG_FILE,
  formatRecord,
  parseAckLog,
  type LogRecord,
  sha256Digest,
  LIMITS,
  writeFileAtomic,
} from '../protocol/index.ts';
import type { ChainFloor } from './ack-chain.ts';

export const ACK_SNAPSHOT_FILE = 'acks.snapshot';

/** Where a snapshot ends in the log: its byte offset and the digest of the record ending there. */
export interface LogPosition {
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

/** Whether the log file has exactly the record `at.lastDigest` ending at byte `at.bytes`. Null = yes. */
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
}

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
  /** The records after `from` (all of them when from is 0). */
  records: LogRecord[];
  /** Byte offset the records start at: the requested position, or 0. */
  from: number;
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
  /** Appends made durable, and fsync calls spent on them (for benchmarks). */
  stats = { appended: 0, syncs: 0 };

  private constructor(
    readonly path: string,
    private fh: FileHandle,
    private size: number,
    /** Digest of the last durable record (null for an empty log). */
    private lastDigest: string | null,
    private readonly groupCommit: boolean,
    private readonly now: () => number,
    private readonly onIdle: (() => void) | undefined,
  ) {}

  /** The durable end of the log: what a snapshot taken now covers. */
  get position(): LogPosition {
    return { bytes: this.size, lastDigest: this.lastDigest };
  }

  /** Opens (creating) the log in `dir`, recovering a torn tail. */
  static async open(dir: string, opts: AckLogOptions = {}): Promise<OpenedLog> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, ACK_LOG_FILE);
    let cutBytes = 0;
    let records: LogRecord[] = [];
    let size = 0;
    let from = 0;
    let fromRejected: string | undefined;
    let lastDigest: string | null = null;
    if (existsSync(path)) {
      const fileSize = statSync(path).size;
      if (opts.from) {
        fromRejected = checkPosition(path, fileSize, opts.from) ?? undefined;
        if (fromRejected === undefined) {
          from = opts.from.bytes;
          lastDigest = opts.from.lastDigest;
        }
      }
      const bytes = from === 0 ? readFileSync(path) : readTail(path, from, fileSize);
      const parsed = parseAckLog(bytes, from === 0 ? path : `${path} (after byte ${from})`);
      records = parsed.records;
      size = from + parsed.validBytes;
      if (records.length > 0) lastDigest = records[records.length - 1]!.digest;
      if (parsed.tornBytes > 0) {
        truncateSync(path, size);
        const fd = openSync(path, 'r+');
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        cutBytes = parsed.tornBytes;
      }
    }
    const fh = await open(path, existsSync(path) ? 'r+' : 'w+', 0o640);
    if (size !== statSync(path).size) throw new Error(`${path}: size changed during recovery`);
    const log = new AckLog(
      path,
      fh,
      size,
      lastDigest,
      opts.groupCommit ?? true,
      opts.now ?? Date.now,
      opts.onIdle,
    );
    return {
      log,
      records,
      from,
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
      const batch = this.groupCommit ? this.queue.splice(0) : this.queue.splice(0, 1);
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
      } catch (e) {
        // The file may now end in a partial record (a short write before ENOSPC): cut it before the next
        // write. Nothing of this batch was acknowledged, so every waiting append fails with it.
        this.tornTail = true;
        const backoffMs = this.failure
          ? Math.min(this.failure.backoffMs * 2, APPEND_RETRY_MAX_MS)
          : APPEND_RETRY_FIRST_MS;
        const error = new AckLogUnavailable(this.path, this.now() + backoffMs, e as Error);
        this.failure = { error, backoffMs };
        for (const p of batch) p.reject(error);
        for (const p of this.queue.splice(0)) p.reject(error);
      }
    }
    this.flushing = false;
    this.idleResolve?.();
    if (this.failure === null && !this.closed) this.onIdle?.();
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
    if (this.failure && this.now() < this.failure.error.retryAt) return this.failure.error;
    return null;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.flushing) await this.idle;
    await this.fh.close();
  }
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
