// The ack endpoint's log record format, shared by the endpoint (writes, recovers), replica merging and
// every reader of history (operator trace, the dashboard). One record per line:
//
//   sha256:<hex digest of the canonical ack envelope> TAB <canonical ack envelope (JCS)> LF
//
// The digest is the ack's chain digest (protocol/acks.ts ackDigest) and doubles as the record checksum.
// A record cut short or failing its checksum at the end of the file is a torn tail from a crash
// mid-write (it was never acknowledged); a bad record followed by good ones is corruption.
import { sha256Digest } from './canonical.ts';

export const ACK_LOG_FILE = 'acks.log';

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
}

const TAB = 0x09;
const LF = 0x0a;

function parseRecord(line: Buffer): LogRecord | null {
  const tab = line.indexOf(TAB);
  if (tab !== 71) return null; // "sha256:" + 64 hex
  const digest = line.subarray(0, tab).toString('latin1');
  const body = line.subarray(tab + 1);
  if (!/^sha256:[0-9a-f]{64}$/.test(digest) || sha256Digest(body) !== digest) return null;
  return { digest, canonical: body.toString('utf8') };
}

/** Parses a log file's bytes. Throws AckLogCorrupt on a bad record that is not at the tail. */
export function parseAckLog(bytes: Buffer, file = ACK_LOG_FILE): ParsedLog {
  const records: LogRecord[] = [];
  let offset = 0;
  let badAt = -1;
  let badDetail = '';
  while (offset < bytes.length) {
    const end = bytes.indexOf(LF, offset);
    if (end < 0) {
      if (badAt < 0) {
        badAt = offset;
        badDetail = 'record without its final newline';
      }
      break;
    }
    const rec = parseRecord(bytes.subarray(offset, end));
    if (rec === null) {
      if (badAt < 0) {
        badAt = offset;
        badDetail = 'checksum or framing mismatch';
      }
    } else {
      if (badAt >= 0) throw new AckLogCorrupt(file, badAt, badDetail);
      records.push(rec);
    }
    offset = end + 1;
  }
  const validBytes = badAt >= 0 ? badAt : bytes.length;
  return { records, validBytes, tornBytes: bytes.length - validBytes };
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
  complete: boolean;
}

/**
 * Audits each host's hash chain from a set of acks (any order, duplicates ignored): continuity of seq
 * and prev from seq 1 to the head, and no forks. Signatures and fleet are the caller's (verifyAck);
 * this is the chain part. Hosts sorted.
 */
export function auditAckChains(links: Iterable<AckLink>): HostChainAudit[] {
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
    for (const seq of order) {
      const at = seqs.get(seq)!;
      acks += at.size;
      if (at.size > 1) forks.push({ seq, digests: [...at.keys()].sort() });
      if (seq > below + 1) gaps.push({ from: below + 1, to: seq - 1 });
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
      complete: gaps.length === 0 && forks.length === 0 && broken.length === 0,
    });
  }
  return out;
}
