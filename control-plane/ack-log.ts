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
import { open, type FileHandle } from 'node:fs/promises';
import { mkdirSync, existsSync, readFileSync, statSync, truncateSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ACK_LOG_FILE, formatRecord, parseAckLog, type LogRecord } from '../protocol/index.ts';

interface Pending {
  bytes: Buffer;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface AckLogOptions {
  /** Batch concurrent appends into one write + fdatasync (default true). */
  groupCommit?: boolean;
  /** Clock (ms) for the back-off after a failed append, injectable for tests. */
  now?: () => number;
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
  constructor(readonly file: string, readonly retryAt: number, readonly writeError: Error) {
    super(`${file}: append failed (${writeError.message}); the log retries by itself at ${new Date(retryAt).toISOString()}`);
    this.name = 'AckLogUnavailable';
  }
}

export interface OpenedLog {
  log: AckLog;
  records: LogRecord[];
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

  private constructor(readonly path: string, private fh: FileHandle, private size: number, private readonly groupCommit: boolean, private readonly now: () => number) {}

  /** Opens (creating) the log in `dir`, recovering a torn tail. */
  static async open(dir: string, opts: AckLogOptions = {}): Promise<OpenedLog> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, ACK_LOG_FILE);
    let cutBytes = 0;
    let records: LogRecord[] = [];
    let size = 0;
    if (existsSync(path)) {
      const parsed = parseAckLog(readFileSync(path), path);
      records = parsed.records;
      size = parsed.validBytes;
      if (parsed.tornBytes > 0) {
        truncateSync(path, parsed.validBytes);
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
    return { log: new AckLog(path, fh, size, opts.groupCommit ?? true, opts.now ?? Date.now), records, cutBytes };
  }

  /** Resolves once the record is on disk. */
  append(rec: LogRecord): Promise<void> {
    const refusal = this.unavailable();
    if (refusal) return Promise.reject(refusal);
    if (this.closed) return Promise.reject(new Error(`${this.path}: log is closed`));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ bytes: formatRecord(rec), resolve, reject });
      if (!this.flushing) void this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    this.idle = new Promise((r) => (this.idleResolve = r));
    while (this.queue.length > 0) {
      const batch = this.groupCommit ? this.queue.splice(0) : this.queue.splice(0, 1);
      const buf = batch.length === 1 ? (batch[0] as Pending).bytes : Buffer.concat(batch.map((p) => p.bytes));
      try {
        if (this.tornTail) await this.cutTornTail();
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, this.size + off);
          off += bytesWritten;
        }
        await this.fh.datasync();
        this.size += buf.length;
        this.stats.appended += batch.length;
        this.stats.syncs++;
        this.failure = null;
        for (const p of batch) p.resolve();
      } catch (e) {
        // The file may now end in a partial record (a short write before ENOSPC): cut it before the next
        // write. Nothing of this batch was acknowledged, so every waiting append fails with it.
        this.tornTail = true;
        const backoffMs = this.failure ? Math.min(this.failure.backoffMs * 2, APPEND_RETRY_MAX_MS) : APPEND_RETRY_FIRST_MS;
        const error = new AckLogUnavailable(this.path, this.now() + backoffMs, e as Error);
        this.failure = { error, backoffMs };
        for (const p of batch) p.reject(error);
        for (const p of this.queue.splice(0)) p.reject(error);
      }
    }
    this.flushing = false;
    this.idleResolve?.();
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
