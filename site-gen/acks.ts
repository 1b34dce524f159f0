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
import { AckLogCorrupt, parseAckLog, type LogRecord } from '../control-plane/ack-log.ts';
import { sha256Digest } from '../protocol/canonical.ts';

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
  /** sha256 of the canonical envelope bytes: the ack's identity (and its chain digest). */
  digest: string;
  bytes: Uint8Array;
  ack: SignedAck;
}

/**
 * Parsing (strict JSON + schema, ~0.1-0.2 ms per ack) and signature checks dominate a build with a long
 * ack log. Both are pure functions of the ack's bytes (and the host key), so watch mode keeps their
 * results by digest between builds: a rebuild after one new ack parses and verifies one ack. Entries not
 * used by a build are dropped, so the cache never outgrows the log window.
 */
export class AckCache {
  private parsed = new Map<string, SignedAck | string>();
  private verified = new Map<string, true | string>();
  private nextParsed = new Map<string, SignedAck | string>();
  private nextVerified = new Map<string, true | string>();

  parse(digest: string, bytes: Uint8Array, source: string): SignedAck | string {
    let r = this.nextParsed.get(digest) ?? this.parsed.get(digest);
    if (r === undefined) {
      try {
        r = readAck(bytes, source);
      } catch (e) {
        r = reasonOf(e);
      }
    }
    this.nextParsed.set(digest, r);
    return r;
  }

  verifiedResult(digest: string, hostKey: string): true | string | undefined {
    const k = `${digest}|${hostKey}`;
    const r = this.nextVerified.get(k) ?? this.verified.get(k);
    if (r !== undefined) this.nextVerified.set(k, r);
    return r;
  }

  recordVerified(digest: string, hostKey: string, result: true | string): void {
    this.nextVerified.set(`${digest}|${hostKey}`, result);
  }

  /** Ends a build: keeps exactly what this build used. */
  commit(): void {
    this.parsed = this.nextParsed;
    this.verified = this.nextVerified;
    this.nextParsed = new Map();
    this.nextVerified = new Map();
  }

  get size(): number {
    return this.parsed.size;
  }
}

export interface ReadAcksOptions {
  /** Results of earlier builds (watch mode); default: a fresh cache. */
  cache?: AckCache;
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

function readLatestFiles(acksParent: string, cache: AckCache, inLog: ReadonlySet<string>, rejected: RejectedAck[]): { candidates: Candidate[]; files: number } {
  const dir = join(acksParent, 'acks', 'hosts');
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { candidates: [], files: 0 };
    throw e;
  }
  if (names.length > MAX_ACK_FILES) throw new Error(`${dir}: ${names.length} files, more than the limit of ${MAX_ACK_FILES}`);
  const out: Candidate[] = [];
  for (const name of names) {
    const source = `acks/hosts/${name}`;
    let bytes: Uint8Array | undefined;
    try {
      bytes = readTreeFile(acksParent, source, LIMITS.ack);
    } catch (e) {
      rejected.push({ source, reason: reasonOf(e) });
      continue;
    }
    if (bytes === undefined) continue;
    const digest = sha256Digest(bytes);
    // The endpoint logs every ack it publishes: the same bytes are already a candidate from the log.
    if (inLog.has(digest)) continue;
    const ack = cache.parse(digest, bytes, source);
    if (typeof ack === 'string') {
      rejected.push({ source, reason: ack });
      continue;
    }
    if (`${ack.signed.host}.json` !== name) {
      rejected.push({ source, reason: `WrongHost: file holds an ack of host ${ack.signed.host}` });
      continue;
    }
    out.push({ source, digest, bytes, ack });
  }
  return { candidates: out, files: names.length };
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

function readLog(logFile: string, cache: AckCache, rejected: RejectedAck[]): { candidates: Candidate[]; truncated: number; records: number } {
  const { bytes, truncated } = readLogTail(logFile);
  let records: LogRecord[];
  try {
    // A torn tail is the endpoint's business (it cuts it at start-up); the complete records before it count.
    records = parseAckLog(bytes, logFile).records;
  } catch (e) {
    if (!(e instanceof AckLogCorrupt)) throw e;
    rejected.push({ source: 'acks.log', reason: `${e.message}; history from the ack log is not shown` });
    return { candidates: [], truncated, records: 0 };
  }
  const candidates: Candidate[] = [];
  records.forEach((rec, i) => {
    const source = `acks.log record ${i + 1}`;
    const raw = Buffer.from(rec.canonical, 'utf8');
    const ack = cache.parse(rec.digest, raw, source);
    if (typeof ack === 'string') rejected.push({ source, reason: ack });
    else candidates.push({ source, digest: rec.digest, bytes: raw, ack });
  });
  return { candidates, truncated, records: records.length };
}

/**
 * Verifies candidates' signatures as one batch (every core); a signature the batch does not accept is
 * re-checked through verifyAckSignature, which yields the typed reason.
 */
function verifyCandidates(candidates: Candidate[], o: ReadAcksOptions, cache: AckCache, rejected: RejectedAck[]): AckRecord[] {
  const keys = hostKeys(o.plans);
  const jobs: SignatureJob[] = [];
  const keyBytes = new Map<string, Uint8Array>();
  type Check = { reason: string } | { key: string; cached: true | string | undefined; job: number | undefined };
  const checks = candidates.map((c): Check => {
    const a = c.ack.signed;
    if (a.fleet !== o.fleet) return { reason: `MixAndMatch: ack of fleet "${a.fleet}", the trust root is for "${o.fleet}"` };
    const key = keys.get(a.host);
    if (key === undefined) return { reason: `UnknownKey: host ${a.host} is in no channel plan of this release` };
    const cached = cache.verifiedResult(c.digest, key);
    if (cached !== undefined) return { key, cached, job: undefined };
    const text = c.ack.signatures.length === 1 ? signedTextOf(c.bytes, c.ack.signatures) : undefined;
    if (text === undefined) return { key, cached: undefined, job: undefined };
    let pk = keyBytes.get(key);
    if (!pk) keyBytes.set(key, (pk = unb64(key)));
    jobs.push({ publicKey: pk, message: text, signature: unb64(c.ack.signatures[0]!.sig) });
    return { key, cached: undefined, job: jobs.length - 1 };
  });
  const results = verifyBatch(jobs);
  const out: AckRecord[] = [];
  checks.forEach((check, i) => {
    const c = candidates[i]!;
    if ('reason' in check) {
      rejected.push({ source: c.source, reason: check.reason });
      return;
    }
    let result = check.cached;
    if (result === undefined && check.job !== undefined && results[check.job]) result = true;
    if (result === undefined) {
      try {
        verifyAckSignature(c.ack, c.ack.signed.host, check.key, c.source);
        result = true;
      } catch (e) {
        result = reasonOf(e);
      }
    }
    cache.recordVerified(c.digest, check.key, result);
    if (result === true) out.push(c.ack.signed);
    else rejected.push({ source: c.source, reason: result });
  });
  return out;
}

export function readVerifiedAcks(o: ReadAcksOptions): AckSet {
  const rejected: RejectedAck[] = [];
  const cache = o.cache ?? new AckCache();
  let logCandidates: Candidate[] = [];
  let truncated = 0;
  let logRecords = 0;
  const logFile = o.logFile !== null && existsSync(o.logFile) ? o.logFile : null;
  if (logFile !== null) ({ candidates: logCandidates, truncated, records: logRecords } = readLog(logFile, cache, rejected));
  const latestFiles = readLatestFiles(o.acksParent, cache, new Set(logCandidates.map((c) => c.digest)), rejected);
  const verified = verifyCandidates([...latestFiles.candidates, ...logCandidates], o, cache, rejected);
  cache.commit();

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
    sources: { latestFiles: latestFiles.files, logRecords, logFile, logTruncatedBytes: truncated },
  };
}
