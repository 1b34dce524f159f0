// The ack endpoint's append-only log (the record format is protocol/ack-log.ts). An append resolves
// only after the bytes are on disk (fdatasync), so a 2xx answer means durable.
// Group commit: appends that arrive while a flush is in progress are written and synced together in
// the next flush, so one fsync pays for many acks.
// Recovery: a record cut short or failing its checksum at the end of the file is a torn tail from a
// crash mid-write (it was never acknowledged) and is cut; a bad record followed by good ones is
// corruption, and the log refuses to open rather than silently drop acknowledged acks.
import { open, type FileHandle } from 'node:fs/promises';
import { mkdirSync, existsSync, readFileSync, statSync, truncateSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { ACK_LOG_FILE, formatRecord, parseAckLog, type LogRecord } from '../protocol/ack-log.ts';

interface Pending {
  bytes: Buffer;
  resolve: () => void;
  reject: (e: Error) => void;
}

export interface AckLogOptions {
  /** Batch concurrent appends into one write + fdatasync (default true). */
  groupCommit?: boolean;
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
  private failure: Error | null = null;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | null = null;
  /** Appends made durable, and fsync calls spent on them (for benchmarks). */
  stats = { appended: 0, syncs: 0 };

  private constructor(readonly path: string, private fh: FileHandle, private size: number, private readonly groupCommit: boolean) {}

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
    return { log: new AckLog(path, fh, size, opts.groupCommit ?? true), records, cutBytes };
  }

  /** Resolves once the record is on disk. */
  append(rec: LogRecord): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
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
        let off = 0;
        while (off < buf.length) {
          const { bytesWritten } = await this.fh.write(buf, off, buf.length - off, this.size + off);
          off += bytesWritten;
        }
        await this.fh.datasync();
        this.size += buf.length;
        this.stats.appended += batch.length;
        this.stats.syncs++;
        for (const p of batch) p.resolve();
      } catch (e) {
        // The file may now end in a partial record: stop accepting until a restart recovers (cuts) it.
        this.failure = new Error(`${this.path}: append failed (${(e as Error).message}); the endpoint must restart to recover the log`);
        for (const p of batch) p.reject(this.failure);
        for (const p of this.queue.splice(0)) p.reject(this.failure);
      }
    }
    this.flushing = false;
    this.idleResolve?.();
  }

  get failed(): Error | null {
    return this.failure;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.flushing) await this.idle;
    await this.fh.close();
  }
}
