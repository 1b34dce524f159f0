// The ack endpoint's log record format, shared by the endpoint (writes, recovers), replica merging and
// every reader of history (operator trace, the dashboard). One record per line:
//
//   sha256:<hex digest of the canonical ack envelope> TAB <canonical ack envelope (JCS)> LF
//
// The digest is the ack's chain digest (protocol/acks.ts ackDigest) and doubles as the record checksum.
// A record cut short or failing its checksum at the end of the file is a torn tail from a crash
// mid-write (it was never acknowledged); a bad record followed by good ones is corruption.
//
// Segments: a log is a directory of segment files read in order. Segment 0 is `acks.log` (so a log
// written before segments existed is a log of one segment), later ones `acks-000001.log`, ... The
// highest-numbered segment is the one being appended to; the others are sealed (they end at a record
// boundary, fsynced before the next one was created) and may be archived, oldest first. A segment
// floor (`acks-000007.floor`) holds every host's chain head as of the start of that segment, written
// when the segments before it are archived, so a reader of the remaining segments knows where each
// host's history starts (the endpoint's own unsigned file: see read-side auditAckLogs).
import { readdirSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isSha256Digest, sha256Digest } from './canonical.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { readFileSync } from 'node:fs';

export const ACK_LOG_FILE = 'acks.log';

/**
 * Numbered segments: at least six digits (sorted by number, not name: segment 1,000,000 and on have
 * seven), and only as ackSegmentName writes them, so no two names stand for one segment.
 */
const SEGMENT_NAME = /^acks-([0-9]{6,})\.log$/;
const FLOOR_NAME = /^acks-([0-9]{6,})\.floor$/;
/** The most digits a segment number may have (beyond it, a number loses precision as a double). */
const MAX_SEGMENT_DIGITS = 15;

/** The file name of segment `index` (0 is the legacy single-file name). */
export function ackSegmentName(index: number): string {
  return index === 0 ? ACK_LOG_FILE : `acks-${String(index).padStart(6, '0')}.log`;
}

/** The file name of the floor of segment `index` (heads as of its start). */
export function ackFloorName(index: number): string {
  return `acks-${String(index).padStart(6, '0')}.floor`;
}

export interface AckLogSegment {
  index: number;
  file: string;
}

function segmentIndexOf(name: string): number | null {
  if (name === ACK_LOG_FILE) return 0;
  return numberIn(name, SEGMENT_NAME, ackSegmentName);
}

/** The segment number `name` gives by `pattern`, when `nameOf` writes that number so (else null). */
function numberIn(name: string, pattern: RegExp, nameOf: (index: number) => string): number | null {
  const m = pattern.exec(name);
  if (m === null || m[1]!.length > MAX_SEGMENT_DIGITS) return null;
  const index = Number(m[1]);
  return nameOf(index) === name ? index : null;
}

/** Whether `name` is a segment file name (acks.log or acks-NNNNNN.log). */
export function isAckSegmentName(name: string): boolean {
  return segmentIndexOf(name) !== null;
}

/**
 * The segments of an ack log, oldest first: the one place a log's files are listed, used by the
 * endpoint's start-up, every history reader, `verify --acks` and `cp merge`. `path` is the log's
 * directory, or a file: a segment file stands for its whole directory (reading one segment of a
 * segmented log would silently drop history), any other file (a merged or copied log) is a log of
 * one segment. A missing directory is a log of no segments.
 */
export function listAckLogSegments(path: string): AckLogSegment[] {
  const st = statOrNull(path);
  let dir = path;
  if (!st?.isDirectory()) {
    // A segment's name stands for its directory even when that segment was archived.
    if (!isAckSegmentName(basename(path))) return st ? [{ index: 0, file: path }] : [];
    dir = dirname(path);
  }
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: AckLogSegment[] = [];
  for (const name of names) {
    const index = segmentIndexOf(name);
    if (index !== null) out.push({ index, file: join(dir, name) });
  }
  return out.sort((a, b) => a.index - b.index);
}

/**
 * Every record of the log at `path` (listAckLogSegments), oldest first. A torn tail (a crash
 * mid-append, never acknowledged) is skipped; a corrupt record throws AckLogCorrupt naming the segment.
 */
export function readAckLogRecords(path: string): LogRecord[] {
  const records: LogRecord[] = [];
  for (const seg of listAckLogSegments(path))
    for (const r of parseAckLog(readFileSync(seg.file), seg.file).records) records.push(r);
  return records;
}

/** One host's head in a segment floor. */
export interface AckFloorHead {
  host: string;
  seq: number;
  digest: string;
}

export interface AckFloor {
  /** The segment whose start this is: the heads as of the end of every segment before it. */
  segment: number;
  heads: AckFloorHead[];
}

/** Writes a floor atomically, framed and checksummed like a log record. */
export function writeAckFloor(file: string, floor: AckFloor): void {
  const body = JSON.stringify({ type: 'ack-log-floor', version: 1, ...floor });
  writeFileAtomic(file, formatRecord({ digest: sha256Digest(body), canonical: body }), {
    mode: 0o640,
  });
}

/**
 * Reads a floor file; throws AckLogCorrupt naming the file when it is not one intact version 1 floor,
 * down to each head. A reader elsewhere (the operator views of a mirrored log) takes the floor from
 * outside: a head of another shape must be a refusal it can report, not a TypeError mid-view.
 */
export function readAckFloor(file: string): AckFloor {
  const parsed = parseAckLog(readFileSync(file), file);
  const body = parsed.records.length === 1 && parsed.tornBytes === 0 ? parsed.records[0] : null;
  const floor = body
    ? (JSON.parse(body.canonical) as Partial<AckFloor> & { type?: unknown; version?: unknown })
    : null;
  if (
    !floor ||
    floor.type !== 'ack-log-floor' ||
    floor.version !== 1 ||
    !Number.isSafeInteger(floor.segment) ||
    floor.segment! < 1 ||
    !Array.isArray(floor.heads)
  )
    throw new AckLogCorrupt(file, 0, 'not one checksummed version 1 ack log floor');
  const hosts = new Set<string>();
  for (const [i, head] of floor.heads.entries()) {
    if (!isFloorHead(head) || hosts.has(head.host))
      throw new AckLogCorrupt(
        file,
        0,
        `heads[${i}] is not one host's seq and SHA-256 digest, or names a host again`,
      );
    hosts.add(head.host);
  }
  return { segment: floor.segment!, heads: floor.heads };
}

/** A head as writeAckFloor writes it: readers anchor the host's chain at this seq and digest. */
function isFloorHead(h: unknown): h is AckFloorHead {
  if (typeof h !== 'object' || h === null) return false;
  const { host, seq, digest } = h as Record<string, unknown>;
  return (
    typeof host === 'string' &&
    Number.isSafeInteger(seq) &&
    (seq as number) >= 1 &&
    typeof digest === 'string' &&
    isSha256Digest(digest)
  );
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** The floor files of a log directory (see the header), by the segment they start. */
export function listAckFloors(dir: string): AckLogSegment[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: AckLogSegment[] = [];
  for (const name of names) {
    const index = numberIn(name, FLOOR_NAME, ackFloorName);
    if (index !== null) out.push({ index, file: join(dir, name) });
  }
  return out.sort((a, b) => a.index - b.index);
}

export interface LogRecord {
  digest: string;
  /** Canonical JSON of the signed ack envelope. */
  canonical: string;
}

export class AckLogCorrupt extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    detail: string,
  ) {
    super(
      `${file}: corrupt record at byte ${offset} followed by valid records ` +
        `(${detail}); refusing to open: restore from a replica or re-collect acks from ` +
        `the agents`,
    );
    this.name = 'AckLogCorrupt';
  }
}

export interface ParsedLog {
  records: LogRecord[];
  /** Bytes of the file that hold complete, valid records. */
  validBytes: number;
  /** Bytes after them: a torn tail (0 when the file ended cleanly). */
  tornBytes: number;
  /** With `keep` or `start`: the 1-based line of each of `records` (lines not kept are skipped). */
  lines?: number[];
  /** With `checkedBytes`: how many of `records` (the first ones) lie in those bytes. */
  checkedRecords?: number;
  /** Lines (records, kept or not) in `validBytes`: where a read of the bytes after them counts from. */
  validLines: number;
}

export interface ParseAckLogOptions {
  /**
   * A reader that needs only some records (a one-host view): a complete line whose body `keep` refuses
   * is skipped unread, neither checked against its digest nor counted as corrupt. Default: every line.
   */
  keep?: (body: Buffer) => boolean;
  /**
   * The first this many bytes are records an earlier read of the same bytes checked (a reader that
   * remembers a verified prefix by its digest: read-side/acks.ts): their framing is split as always but
   * their digests are taken from the frame, not recomputed. Must end at a record boundary.
   */
  checkedBytes?: number;
  /**
   * `bytes` are the file's from this byte on (a record boundary; what is before it was read before:
   * a verified prefix taken from its index), which holds `line` lines. Offsets, `validBytes`,
   * `validLines` and line numbers are the whole file's; `lines` is given for every record returned.
   */
  start?: { byte: number; line: number };
}

const TAB = 0x09;
const LF = 0x0a;

function parseRecord(line: Buffer, checked: boolean): LogRecord | null {
  const tab = line.indexOf(TAB);
  if (tab !== 71) return null; // "sha256:" + 64 hex
  const digest = line.subarray(0, tab).toString('latin1');
  const body = line.subarray(tab + 1);
  if (!checked && (!isSha256Digest(digest) || sha256Digest(body) !== digest)) return null;
  return { digest, canonical: body.toString('utf8') };
}

/** Parses a log file's bytes. Throws AckLogCorrupt on a bad record that is not at the tail. */
export function parseAckLog(
  bytes: Buffer,
  file = ACK_LOG_FILE,
  opts: ParseAckLogOptions = {},
): ParsedLog {
  const records: LogRecord[] = [];
  const keep = opts.keep;
  const checkedBytes = opts.checkedBytes ?? 0;
  let checkedRecords = 0;
  const lines: number[] = [];
  const base = opts.start?.byte ?? 0;
  let line = opts.start?.line ?? 0;
  let offset = 0;
  const numbered = keep !== undefined || opts.start !== undefined;
  let badAt = -1;
  let badLine = 0;
  let badDetail = '';
  while (offset < bytes.length) {
    const end = bytes.indexOf(LF, offset);
    if (end < 0) {
      if (badAt < 0) {
        badAt = offset;
        badLine = line;
        badDetail = 'record without its final newline';
      }
      break;
    }
    line++;
    if (keep !== undefined && !keep(bytes.subarray(offset + 72, end))) {
      offset = end + 1;
      continue;
    }
    const checked = end < checkedBytes;
    const rec = parseRecord(bytes.subarray(offset, end), checked);
    if (rec === null) {
      if (badAt < 0) {
        badAt = offset;
        badLine = line - 1;
        badDetail = 'checksum or framing mismatch';
      }
    } else {
      if (badAt >= 0) throw new AckLogCorrupt(file, base + badAt, badDetail);
      records.push(rec);
      if (checked) checkedRecords++;
      if (numbered) lines.push(line);
    }
    offset = end + 1;
  }
  const validBytes = badAt >= 0 ? badAt : bytes.length;
  return {
    records,
    validBytes: base + validBytes,
    tornBytes: bytes.length - validBytes,
    validLines: badAt >= 0 ? badLine : line,
    ...(numbered ? { lines } : {}),
    ...(opts.checkedBytes === undefined ? {} : { checkedRecords }),
  };
}

export function formatRecord(rec: LogRecord): Buffer {
  return Buffer.from(`${rec.digest}\t${rec.canonical}\n`, 'utf8');
}

/** One ack as a chain audit sees it: its host, position and the digest it chains to. */
export interface AckLink {
  host: string;
  seq: number;
  /** The ack's chain digest (protocol/acks.ts ackDigest; a log record's digest). */
  digest: string;
  prev: string | null;
}

export interface HostChainAudit {
  host: string;
  /** Distinct acks held. */
  acks: number;
  head: number;
  /** Seq ranges not held (from 1 below the lowest held ack, and between held ones). */
  gaps: { from: number; to: number }[];
  /** Seqs at which the host signed more than one ack (digests sorted). */
  forks: { seq: number; digests: string[] }[];
  /** Seqs held whose `prev` is not the digest of any held ack one below (or seq 1 with a prev). */
  broken: { seq: number; reason: string }[];
  /**
   * The held history starts above seq 1 at a floor: the acks below were archived, and the lowest held
   * ack chains to the head a floor names for this host (instead of a gap from seq 1).
   */
  startsAt?: { seq: number; floor: string };
  complete: boolean;
}

/** A host's chain head as a segment floor names it: where its held history may start. */
export interface ChainFloorHead {
  seq: number;
  digest: string;
  /** The floor file, for the report. */
  source: string;
}

/**
 * Audits each host's hash chain from a set of acks (any order, duplicates ignored): continuity of seq
 * and prev from seq 1 to the head, and no forks. Signatures and fleet are the caller's (verifyAck);
 * this is the chain part. Hosts sorted.
 */
export function auditAckChains(
  links: Iterable<AckLink>,
  floors: ReadonlyMap<string, ChainFloorHead> = new Map(),
): HostChainAudit[] {
  const byHost = new Map<string, Map<number, Map<string, AckLink>>>();
  for (const l of links) {
    let seqs = byHost.get(l.host);
    if (!seqs) byHost.set(l.host, (seqs = new Map()));
    let at = seqs.get(l.seq);
    if (!at) seqs.set(l.seq, (at = new Map()));
    at.set(l.digest, l);
  }
  const out: HostChainAudit[] = [];
  for (const host of [...byHost.keys()].sort()) {
    const seqs = byHost.get(host)!;
    const order = [...seqs.keys()].sort((a, b) => a - b);
    const gaps: HostChainAudit['gaps'] = [];
    const forks: HostChainAudit['forks'] = [];
    const broken: HostChainAudit['broken'] = [];
    let acks = 0;
    let below = 0;
    let startsAt: HostChainAudit['startsAt'];
    const floor = floors.get(host);
    for (const seq of order) {
      const at = seqs.get(seq)!;
      acks += at.size;
      if (at.size > 1) forks.push({ seq, digests: [...at.keys()].sort() });
      const onFloor =
        below === 0 &&
        floor !== undefined &&
        floor.seq === seq - 1 &&
        [...at.values()].every((l) => l.prev === floor.digest);
      if (onFloor) startsAt = { seq, floor: floor.source };
      else if (seq > below + 1) gaps.push({ from: below + 1, to: seq - 1 });
      else if (seq === 1) {
        if ([...at.values()].some((l) => l.prev !== null))
          broken.push({ seq, reason: 'seq 1 carries a prev digest' });
      } else {
        const held = seqs.get(seq - 1)!;
        for (const l of at.values())
          if (l.prev === null || !held.has(l.prev))
            broken.push({
              seq,
              reason: `prev ${l.prev} is not the digest of the held seq ${seq - 1}`,
            });
      }
      below = seq;
    }
    out.push({
      host,
      acks,
      head: below,
      gaps,
      forks,
      broken,
      ...(startsAt ? { startsAt } : {}),
      complete: gaps.length === 0 && forks.length === 0 && broken.length === 0,
    });
  }
  return out;
}
