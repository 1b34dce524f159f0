// The acks the dashboard counts: each host's latest ack as the ack endpoint publishes it
// (acks/hosts/<host>.json) and, when present, the endpoint's append-only log for history. Every ack is
// verified against the host key in the signed channel plan; an ack that does not verify is listed as
// rejected and never counted (the control plane is not trusted to vouch for acks).
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readAck, verifyAckSignature, type SignedAck } from '../protocol/acks.ts';
import { signedTextOf } from '../protocol/envelope.ts';
import { isVerificationError } from '../protocol/errors.ts';
import { unb64 } from '../protocol/keys.ts';
import { LIMITS } from '../protocol/limits.ts';
import { readTreeFile } from '../protocol/verify/fetcher.ts';
import { verifyBatch, type SignatureJob } from '../protocol/verify/batch-verify.ts';
import type { ChannelPlan } from '../protocol/schemas/release.ts';
import type { AckRecord } from '../reconciler/index.ts';
import { parseAckLog } from '../control-plane/ack-log.ts';

/** The log is read from its end: older history than this is left out (and said so). */
export const MAX_ACK_LOG_BYTES = 128 * 1024 * 1024;
export const MAX_ACK_FILES = 1_000_000;

export interface RejectedAck {
  source: string;
  reason: string;
}

export interface AckSet {
  /** Latest verified ack per host (highest seq from both sources). */
  latest: Record<string, AckRecord>;
  /** Every verified ack per host, oldest first (seq order), without duplicates. */
  history: Map<string, AckRecord[]>;
  rejected: RejectedAck[];
  /** Where acks came from, for the page footer. */
  sources: { latestFiles: number; logRecords: number; logFile: string | null; logTruncatedBytes: number };
}

interface Candidate {
  source: string;
  bytes: Uint8Array;
  ack: SignedAck;
}

export interface ReadAcksOptions {
  /** The directory holding acks/hosts/<host>.json (a control plane's tree directory). */
  acksParent: string;
  /** The ack endpoint's log (acks.log); null or missing = latest acks only. */
  logFile: string | null;
  fleet: string;
  plans: Record<string, ChannelPlan>;
}

function hostKeys(plans: Record<string, ChannelPlan>): Map<string, string> {
  const keys = new Map<string, string>();
  for (const p of Object.values(plans)) for (const [h, e] of Object.entries(p.hosts)) keys.set(h, e.hostKey);
  return keys;
}

function reasonOf(e: unknown): string {
  if (isVerificationError(e)) return `${e.code}: ${e.detail}`;
  throw e;
}

function readLatestFiles(acksParent: string, rejected: RejectedAck[]): Candidate[] {
  const dir = join(acksParent, 'acks', 'hosts');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  if (names.length > MAX_ACK_FILES) throw new Error(`${dir}: ${names.length} files, more than the limit of ${MAX_ACK_FILES}`);
  const out: Candidate[] = [];
  for (const name of names) {
    const source = `acks/hosts/${name}`;
    try {
      const bytes = readTreeFile(acksParent, source, LIMITS.ack);
      if (bytes === undefined) continue;
      const ack = readAck(bytes, source);
      if (`${ack.signed.host}.json` !== name) {
        rejected.push({ source, reason: `WrongHost: file holds an ack of host ${ack.signed.host}` });
        continue;
      }
      out.push({ source, bytes, ack });
    } catch (e) {
      rejected.push({ source, reason: reasonOf(e) });
    }
  }
  return out;
}

function readLogTail(logFile: string): { bytes: Buffer; truncated: number } {
  const size = statSync(logFile).size;
  const start = Math.max(0, size - MAX_ACK_LOG_BYTES);
  const fd = openSync(logFile, 'r');
  try {
    const buf = Buffer.alloc(size - start);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, start + off);
      if (n === 0) break;
      off += n;
    }
    const bytes = buf.subarray(0, off);
    if (start === 0) return { bytes, truncated: 0 };
    // Start at a record boundary: drop the partial first line.
    const lf = bytes.indexOf(0x0a);
    return { bytes: lf < 0 ? Buffer.alloc(0) : bytes.subarray(lf + 1), truncated: start + (lf < 0 ? bytes.length : lf + 1) };
  } finally {
    closeSync(fd);
  }
}

function readLog(logFile: string, rejected: RejectedAck[]): { candidates: Candidate[]; truncated: number } {
  const { bytes, truncated } = readLogTail(logFile);
  // A torn tail is the endpoint's business (it cuts it at start-up); the complete records before it count.
  const parsed = parseAckLog(bytes, logFile);
  const candidates: Candidate[] = [];
  parsed.records.forEach((rec, i) => {
    const source = `acks.log record ${i + 1}`;
    try {
      const raw = Buffer.from(rec.canonical, 'utf8');
      candidates.push({ source, bytes: raw, ack: readAck(raw, source) });
    } catch (e) {
      rejected.push({ source, reason: reasonOf(e) });
    }
  });
  return { candidates, truncated };
}

/**
 * Verifies candidates' signatures as one batch (every core); a signature the batch does not accept is
 * re-checked through verifyAckSignature, which yields the typed reason.
 */
function verifyCandidates(candidates: Candidate[], o: ReadAcksOptions, rejected: RejectedAck[]): AckRecord[] {
  const keys = hostKeys(o.plans);
  const jobs: SignatureJob[] = [];
  const jobOf: (number | undefined)[] = [];
  const keyBytes = new Map<string, Uint8Array>();
  const checked = candidates.map((c): { key: string } | { reason: string } => {
    const a = c.ack.signed;
    if (a.fleet !== o.fleet) return { reason: `MixAndMatch: ack of fleet "${a.fleet}", the trust root is for "${o.fleet}"` };
    const key = keys.get(a.host);
    if (key === undefined) return { reason: `UnknownKey: host ${a.host} is in no channel plan of this release` };
    const text = c.ack.signatures.length === 1 ? signedTextOf(c.bytes, c.ack.signatures) : undefined;
    if (text !== undefined) {
      let pk = keyBytes.get(key);
      if (!pk) keyBytes.set(key, (pk = unb64(key)));
      jobOf.push(jobs.length);
      jobs.push({ publicKey: pk, message: text, signature: unb64(c.ack.signatures[0]!.sig) });
    } else jobOf.push(undefined);
    return { key };
  });
  const results = verifyBatch(jobs);
  const out: AckRecord[] = [];
  let j = 0;
  checked.forEach((check, i) => {
    const c = candidates[i]!;
    if ('reason' in check) {
      rejected.push({ source: c.source, reason: check.reason });
      return;
    }
    const job = jobOf[j++];
    if (job !== undefined && results[job]) {
      out.push(c.ack.signed);
      return;
    }
    try {
      verifyAckSignature(c.ack, c.ack.signed.host, check.key, c.source);
      out.push(c.ack.signed);
    } catch (e) {
      rejected.push({ source: c.source, reason: reasonOf(e) });
    }
  });
  return out;
}

export function readVerifiedAcks(o: ReadAcksOptions): AckSet {
  const rejected: RejectedAck[] = [];
  const latestFiles = readLatestFiles(o.acksParent, rejected);
  let logCandidates: Candidate[] = [];
  let truncated = 0;
  const logFile = o.logFile !== null && existsSync(o.logFile) ? o.logFile : null;
  if (logFile !== null) ({ candidates: logCandidates, truncated } = readLog(logFile, rejected));
  const verified = verifyCandidates([...latestFiles, ...logCandidates], o, rejected);

  const history = new Map<string, AckRecord[]>();
  const latest: Record<string, AckRecord> = Object.create(null) as Record<string, AckRecord>;
  for (const a of verified) {
    let list = history.get(a.host);
    if (!list) history.set(a.host, (list = []));
    list.push(a);
  }
  for (const [host, list] of history) {
    // One entry per seq; the endpoint rejects forks, so equal seqs are the same ack (from two sources).
    list.sort((x, y) => x.seq - y.seq);
    const unique = list.filter((a, i) => i === 0 || list[i - 1]!.seq !== a.seq);
    history.set(host, unique);
    latest[host] = unique[unique.length - 1]!;
  }
  rejected.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  return {
    latest,
    history: new Map([...history].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    rejected,
    sources: { latestFiles: latestFiles.length, logRecords: logCandidates.length, logFile, logTruncatedBytes: truncated },
  };
}
