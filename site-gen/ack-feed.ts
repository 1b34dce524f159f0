// Watch mode's ack intake: the ack log is append-only, so a rebuild after new acks need not read and
// take in the whole log again. The feed keeps the log's collector (every record read so far, verified)
// and where each segment's read ended; the next build reads only what was appended since and adds it
// to that collector. The latest-ack files (acks/hosts/) are taken in every build, through a collector that
// continues the log's (the same de-duplication as one intake: read-side readAckHistory); between full
// reads a file whose metadata is unchanged is not read again (LatestAckFiles). The result is
// exactly what a full read gives; anything else than appended records (a new, removed, replaced or
// shrunk segment, a windowed or corrupt log, another release's host keys) reads everything again.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, sep } from 'node:path';
import {
  AckLogCorrupt,
  listAckLogSegments,
  parseAckLog,
  readCappedFile,
  type AckTrust,
} from '../protocol/index.ts';
import {
  AckCollector,
  type AckSignatures,
  collectAckLog,
  collectTreeAcks,
  type AckCache,
  type AckHistory,
  type AckLogOptions,
  type AckLogRead,
  clearlyOlder,
  racyCutoff,
  sameStat,
  statOf,
  type FileStat,
} from '../read-side/index.ts';

export interface AckFeedReadOptions {
  acksDir: string;
  /** The ack endpoint's log, or null for the tree's latest acks only. */
  logFile: string | null;
  trust: AckTrust;
  cache: AckCache;
  log: AckLogOptions & { label: string };
  /** read-side AckCollector's `signatures` (build.ts: 'chain-tips' unless every signature is asked for). */
  signatures?: AckSignatures;
}

/** Where the previous read of one segment ended. */
interface SegmentMark {
  file: string;
  /** Identity of the file read: a replaced segment is read again from the start. */
  dev: number;
  ino: number;
  end: number;
  records: number;
}

interface LogState {
  logFile: string;
  trust: AckTrust;
  collector: AckCollector;
  read: AckLogRead;
  marks: SegmentMark[];
}

const NO_LOG: AckLogRead = {
  records: 0,
  segments: 0,
  tornBytes: 0,
  skippedBytes: 0,
  corrupt: false,
};

/**
 * The latest-ack files as last read, each with the identity of the file read (read-side/ack-file-memo.ts
 * statOf: device, inode, size, modification and change times, compared as the one-shot build's
 * persisted memo compares them, sameStat). The endpoint replaces a host's file by a rename (a new inode) and any
 * write moves its change time, which no program can set back: a file whose identity is unchanged holds
 * the bytes read before, and they are taken in again as they were (looked up in the ack cache by their
 * digest, as any read bytes are). A file is kept by its identity only when both its times are clearly
 * older than the read that stat'ed it (the racy rule, racyCutoff): a rewrite in the same clock tick could
 * keep them. Saves the open, read and close of every host's file on each rebuild; a full read (a tree
 * change, the periodic rebuild) starts afresh.
 */
class LatestAckFiles {
  /** `identity` null: the file was too new to be recalled by it (read again next time). */
  private last = new Map<string, { identity: FileStat | null; bytes: Buffer }>();
  private next = new Map<string, { identity: FileStat | null; bytes: Buffer }>();
  /** Files with a time at or after this (ms) are not recalled by their identity (begin()). */
  private clearlyOlderThan = -Infinity;
  /** Files opened and read since begin() (the others were taken as read before). */
  filesRead = 0;

  /**
   * `reported`: with a watcher reporting changes (AckFeed changeReports), the names of the files it
   * reported since they were last read; a file read before and not reported is taken as read then,
   * without a stat. null: every file is stat'ed.
   */
  constructor(private readonly reported: Set<string> | null) {}

  /** Before a read of acks/hosts/, before any stat: `startedAt` (ms) is the racy rule's instant. */
  begin(startedAt: number): void {
    this.clearlyOlderThan = racyCutoff(startedAt);
    this.filesRead = 0;
  }

  readonly read = (path: string, maxBytes: number, label: string): Buffer => {
    if (this.reported !== null) {
      const known = this.last.get(path);
      const name = fileName(path);
      if (known !== undefined && !this.reported.has(name)) {
        this.next.set(path, known);
        return known.bytes;
      }
      this.reported.delete(name);
    }
    // Taken before the read: a file changed during it has another identity at the next build. Null
    // (missing, not a regular file): read, and the read reports it.
    const identity = statOf(path);
    const known = this.last.get(path);
    const bytes =
      identity !== null && known?.identity != null && sameStat(known.identity, identity)
        ? known.bytes
        : this.readFile(path, maxBytes, label);
    this.next.set(path, {
      identity:
        identity !== null && clearlyOlder(identity, this.clearlyOlderThan) ? identity : null,
      bytes,
    });
    return bytes;
  };

  private readFile(path: string, maxBytes: number, label: string): Buffer {
    this.filesRead++;
    return readCappedFile(path, maxBytes, label);
  }

  /** After a read of acks/hosts/: forget the files it no longer holds. */
  done(): void {
    this.last = this.next;
    this.next = new Map();
  }
}

/** The last component of a path (a latest-ack file's name: `<host>.json`). */
function fileName(path: string): string {
  return path.slice(path.lastIndexOf(sep) + 1);
}

export interface AckFeedOptions {
  /**
   * The caller reports every change of a latest-ack file (fileChanged) from before the first read on:
   * `site watch`, whose file watcher is ready before its first build. Between full reads a file read
   * before and not reported since is then taken as read without a stat (stat'ing 10,000 files is
   * ~40-70 ms of a rebuild after one ack). What such a file shows was verified when it was read; a
   * change the watcher missed is read at the next full read (a tree change, the periodic rebuild).
   */
  changeReports?: boolean;
  /**
   * The clock of the racy rule (ms; default Date.now): a latest-ack file is recalled by its identity
   * only when its times are clearly older than the read that stat'ed it. Tests move it ahead so that
   * files they just wrote are recalled by identity.
   */
  clock?: () => number;
}

export class AckFeed {
  private log: LogState | null = null;
  /** Names of latest-ack files reported changed since they were last read (changeReports), else null. */
  private reported: Set<string> | null;
  private files: LatestAckFiles;
  private readonly clock: () => number;

  constructor(o: AckFeedOptions = {}) {
    this.reported = o.changeReports === true ? new Set() : null;
    this.clock = o.clock ?? Date.now;
    this.files = new LatestAckFiles(this.reported);
  }

  /** A latest-ack file (acks/hosts/<host>.json) was written, replaced or removed (changeReports). */
  fileChanged(path: string): void {
    this.reported?.add(fileName(path));
  }

  /** The reports can no longer be relied on (the watcher failed): every file is stat'ed from now on. */
  changeReportsLost(): void {
    this.reported = null;
    this.files = new LatestAckFiles(null);
  }

  /**
   * The ack history now. `incremental`: the caller's promise that the trust is that of the previous
   * read (the same verified release); false reads everything. `full` in the result: everything was
   * read (the caller may then commit the ack cache: every ack was looked up in it); `filesRead`: the
   * latest-ack files opened and read (the others were taken as read before, by their identity).
   */
  read(
    o: AckFeedReadOptions,
    incremental: boolean,
  ): { history: AckHistory; full: boolean; filesRead: number } {
    let full = false;
    let log = this.log;
    if (
      o.logFile === null ||
      log === null ||
      !incremental ||
      // The same verified release: the same host keys (the Map itself).
      log.trust.hostKeys !== o.trust.hostKeys ||
      log.trust.fleet !== o.trust.fleet ||
      log.logFile !== o.logFile ||
      !appendOnly(log, o)
    ) {
      log = o.logFile === null ? null : fullLogRead(o, o.logFile);
      full = true;
    }
    this.log = log;
    if (!incremental) {
      // A full read reads every file: what was reported before it is in what it reads.
      this.reported?.clear();
      this.files = new LatestAckFiles(this.reported);
    }
    const files = new AckCollector(o.trust, o.cache, log?.collector.seenIds ?? [], o.signatures);
    this.files.begin(this.clock());
    const tree = collectTreeAcks(o.acksDir, files, { bundles: false, readFile: this.files.read });
    this.files.done();
    files.result();
    const fromLog = log?.collector;
    const read = log?.read ?? NO_LOG;
    return {
      full,
      filesRead: this.files.filesRead,
      history: {
        acks: [...(fromLog?.acks ?? []), ...files.acks],
        rejected: [...(fromLog?.rejected ?? []), ...files.rejected],
        envelopes: [...(fromLog?.envelopes ?? []), ...files.envelopes],
        digests: [...(fromLog?.digests ?? []), ...files.digests],
        sources: {
          log: o.logFile,
          logRecords: read.records,
          logTornBytes: read.tornBytes,
          logSkippedBytes: read.skippedBytes,
          treeAcks: true,
          latestFiles: tree.latestFiles,
        },
      },
    };
  }
}

function fullLogRead(o: AckFeedReadOptions, logFile: string): LogState {
  const collector = new AckCollector(o.trust, o.cache, [], o.signatures);
  const read = collectAckLog(logFile, collector, { ...o.log, ends: true });
  collector.result();
  const ends = read.ends ?? [];
  const marks: SegmentMark[] = [];
  for (const e of ends) {
    const id = identity(e.file);
    if (id === null) break;
    marks.push({ file: e.file, ...id, end: e.end, records: e.records });
  }
  // A log read only in part (a window, a corrupt record) is read whole every build.
  if (read.skippedBytes > 0 || read.corrupt || marks.length !== ends.length) marks.length = 0;
  return { logFile, trust: o.trust, collector, read, marks };
}

function identity(file: string): { dev: number; ino: number } | null {
  try {
    const fd = openSync(file, 'r');
    try {
      const st = fstatSync(fd);
      return { dev: st.dev, ino: st.ino };
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

/**
 * Reads what was appended to the log since `log` was read and adds it to its collector; false (nothing
 * changed in `log`) when the log changed otherwise, or the new bytes hold a corrupt record.
 */
function appendOnly(log: LogState, o: AckFeedReadOptions): boolean {
  const segments = listAckLogSegments(log.logFile);
  if (
    log.marks.length === 0 ||
    segments.length !== log.marks.length ||
    segments.some((s, i) => s.file !== log.marks[i]!.file)
  )
    return false;
  const appended: { mark: SegmentMark; bytes: Buffer }[] = [];
  let total = 0;
  for (const mark of log.marks) {
    const bytes = readFrom(mark);
    if (bytes === null) return false;
    total += mark.end + bytes.length;
    if (bytes.length > 0) appended.push({ mark, bytes });
  }
  // Past the window a full read would leave the oldest records out: read as it would.
  if (o.log.windowBytes !== undefined && total > o.log.windowBytes) return false;
  let parsed;
  try {
    parsed = appended.map((a) => ({ ...a, ...parseAckLog(a.bytes, a.mark.file) }));
  } catch (e) {
    if (e instanceof AckLogCorrupt) return false;
    throw e;
  }
  const single = log.marks.length === 1;
  for (const p of parsed) {
    // Sources as collectAckLog names them: `<label>:<line>`, per segment file when there are several.
    const source = single ? o.log.label : `${o.log.label}[${basename(p.mark.file)}]`;
    p.records.forEach((r, i) =>
      log.collector.addLogRecord(r, `${source}:${p.mark.records + i + 1}`),
    );
    p.mark.end += p.validBytes;
    p.mark.records += p.records.length;
  }
  log.collector.result();
  // A torn tail lies past its segment's mark, so it is in what was just parsed.
  log.read = {
    ...log.read,
    records: log.read.records + parsed.reduce((n, p) => n + p.records.length, 0),
    tornBytes: parsed.reduce((n, p) => n + p.tornBytes, 0),
  };
  return true;
}

/** The bytes of a segment past `mark.end`, or null when the file is not the one read (replaced, shrunk). */
function readFrom(mark: SegmentMark): Buffer | null {
  let fd: number;
  try {
    fd = openSync(mark.file, 'r');
  } catch {
    return null;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.dev !== mark.dev || st.ino !== mark.ino || st.size < mark.end)
      return null;
    const buf = Buffer.allocUnsafe(st.size - mark.end);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, mark.end + off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}
