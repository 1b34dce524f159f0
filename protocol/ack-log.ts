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
  constructor(readonly file: string, readonly offset: number, detail: string) {
    super(`${file}: corrupt record at byte ${offset} followed by valid records (${detail}); refusing to open: restore from a replica or re-collect acks from the agents`);
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
