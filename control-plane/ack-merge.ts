// Merging ack logs of several endpoint replicas. Acks are a grow-only set of host-signed records, so
// the merge is a set union keyed by the ack digest; it is commutative, associative and idempotent, and
// replicas converge whatever order they exchange logs in.
// Each host's head (what its acks/hosts/<host>.json and the bundles show, and what the chain rule checks
// the next ack against) is the ack with the highest seq; two different acks with that seq (a fork
// accepted by two replicas that did not see each other) are resolved by the smaller digest, so every
// replica picks the same one. The merged log lists each host's acks by seq with the head last, which is
// exactly what AckService's replay takes as the head.
import {
  readFileSync,
  existsSync,
  writeFileSync,
  mkdirSync,
  openSync,
  fsyncSync,
  closeSync,
  renameSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  verifyAck,
  auditAckChains,
  readAckLogRecords,
  listAckLogSegments,
  formatRecord,
  ACK_LOG_FILE,
  type HostChainAudit,
  type LogRecord,
  type SignedAck,
  fsyncDir,
} from '../protocol/index.ts';
import type { ReleaseView } from './release-view.ts';
import { ackTrustOfView } from './ack-service.ts';

export interface MergeResult {
  records: LogRecord[];
  hosts: number;
  /** Acks dropped because they do not verify against the release (only when a view is given). */
  rejected: { digest: string; host: string; reason: string }[];
  /** Hosts whose logs disagree at some seq (forks): resolved by the rule above, reported for audit. */
  forks: { host: string; seq: number; digests: string[] }[];
  /** Every host's chain in the merged set: continuity from seq 1 (gaps, broken links) and forks. */
  chains: HostChainAudit[];
}

interface Entry {
  rec: LogRecord;
  host: string;
  seq: number;
  prev: string | null;
}

export function mergeAckRecords(
  inputs: readonly (readonly LogRecord[])[],
  view?: ReleaseView,
): MergeResult {
  const byDigest = new Map<string, Entry>();
  const rejected: MergeResult['rejected'] = [];
  const trust = view && ackTrustOfView(view);
  for (const records of inputs) {
    for (const rec of records) {
      if (byDigest.has(rec.digest)) continue;
      const ack = JSON.parse(rec.canonical) as SignedAck;
      const host = ack.signed.host;
      if (trust) {
        try {
          verifyAck(ack, trust, `ack ${rec.digest}`);
        } catch (e) {
          rejected.push({ digest: rec.digest, host, reason: (e as Error).message });
          continue;
        }
      }
      byDigest.set(rec.digest, { rec, host, seq: ack.signed.seq, prev: ack.signed.prev });
    }
  }
  const perHost = new Map<string, Entry[]>();
  for (const e of byDigest.values()) perHost.set(e.host, [...(perHost.get(e.host) ?? []), e]);
  const forks: MergeResult['forks'] = [];
  const records: LogRecord[] = [];
  for (const host of [...perHost.keys()].sort()) {
    const entries = perHost.get(host)!;
    const bySeq = new Map<number, string[]>();
    for (const e of entries) bySeq.set(e.seq, [...(bySeq.get(e.seq) ?? []), e.rec.digest]);
    for (const [seq, digests] of bySeq)
      if (digests.length > 1) forks.push({ host, seq, digests: digests.sort() });
    const maxSeq = Math.max(...entries.map((e) => e.seq));
    const head = entries
      .filter((e) => e.seq === maxSeq)
      .sort((a, b) => (a.rec.digest < b.rec.digest ? -1 : 1))[0]!;
    entries.sort(
      (a, b) =>
        a.seq - b.seq || (a === head ? 1 : b === head ? -1 : a.rec.digest < b.rec.digest ? -1 : 1),
    );
    for (const e of entries) records.push(e.rec);
  }
  const chains = auditAckChains(
    [...byDigest.values()].map((e) => ({
      host: e.host,
      seq: e.seq,
      digest: e.rec.digest,
      prev: e.prev,
    })),
  );
  return { records, hosts: perHost.size, rejected, forks, chains };
}

/**
 * Merges the logs of several replicas (each a log directory or file: every segment of it is read)
 * into `outDir/acks.log` (written atomically). `outDir` may hold a one-segment log (an input, say),
 * not a segmented one: the merged acks.log would sit before its later segments.
 */
export function mergeAckLogFiles(
  logFiles: readonly string[],
  outDir: string,
  view?: ReleaseView,
): MergeResult {
  const later = listAckLogSegments(outDir).filter((s) => s.index > 0);
  if (later.length > 0)
    throw new Error(
      `${outDir}: holds a segmented ack log (${later[0]!.file}); merge into a new directory`,
    );
  const inputs = logFiles.map((f) => readAckLogRecords(f));
  const result = mergeAckRecords(inputs, view);
  mkdirSync(outDir, { recursive: true });
  const tmp = join(outDir, `.${ACK_LOG_FILE}.merge.tmp`);
  writeFileSync(tmp, Buffer.concat(result.records.map(formatRecord)));
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(outDir, ACK_LOG_FILE));
  fsyncDir(outDir);
  return result;
}
